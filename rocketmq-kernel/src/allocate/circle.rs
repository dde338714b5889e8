//! [`AveragelyByCircle`]: round robin (Java `AllocateMessageQueueAveragelyByCircle`).

use rocketmq_model::MessageQueue;

use super::{AllocateStrategy, SortedInput};

/// Deals the sorted queues out to the sorted client ids in turn: client `i`
/// gets queues `i`, `i + n`, `i + 2n`, ... Name `"AVG_BY_CIRCLE"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AveragelyByCircle;

impl AllocateStrategy for AveragelyByCircle {
    fn allocate(
        &self,
        _group: &str,
        own_client_id: &str,
        queues: &[MessageQueue],
        client_ids: &[String],
    ) -> Vec<MessageQueue> {
        let Some(input) = SortedInput::new(own_client_id, queues, client_ids) else {
            return Vec::new();
        };
        input
            .queues
            .iter()
            .skip(input.own_index)
            .step_by(input.client_ids.len())
            .map(|mq| (*mq).clone())
            .collect()
    }

    fn name(&self) -> &str {
        "AVG_BY_CIRCLE"
    }
}
