//! [`Averagely`]: contiguous, balanced blocks (Java `AllocateMessageQueueAveragely`).

use rocketmq_model::MessageQueue;

use super::{AllocateStrategy, SortedInput};

/// Splits the sorted queues into contiguous blocks, one per sorted client id;
/// the first `queues % clients` clients get one queue more. With more clients
/// than queues, the last clients get nothing. Java's default strategy
/// (PROTOCOL.md §8.5), name `"AVG"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Averagely;

impl AllocateStrategy for Averagely {
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
        let (start, len) = block(input.queues.len(), input.client_ids.len(), input.own_index);
        input.queues[start..start + len]
            .iter()
            .map(|mq| (*mq).clone())
            .collect()
    }

    fn name(&self) -> &str {
        "AVG"
    }
}

/// The start and length of client `index`'s block of `queues` queues shared
/// by `clients` clients, as Java computes them.
fn block(queues: usize, clients: usize, index: usize) -> (usize, usize) {
    let rem = queues % clients;
    let gets_extra = rem > 0 && index < rem;
    let size = if queues <= clients {
        1
    } else if gets_extra {
        queues / clients + 1
    } else {
        queues / clients
    };
    let start = if gets_extra {
        index * size
    } else {
        index * size + rem
    };
    (start.min(queues), size.min(queues.saturating_sub(start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_queue_once() {
        for queues in 1..40 {
            for clients in 1..12 {
                let mut next = 0;
                for index in 0..clients {
                    let (start, len) = block(queues, clients, index);
                    if len > 0 {
                        assert_eq!(start, next, "{queues} queues, {clients} clients");
                    }
                    next = start + len;
                }
                assert_eq!(next.min(queues), queues);
            }
        }
    }

    #[test]
    fn more_clients_than_queues() {
        assert_eq!(block(2, 5, 0), (0, 1));
        assert_eq!(block(2, 5, 1), (1, 1));
        assert_eq!(block(2, 5, 4).1, 0);
    }
}
