//! [`SendResult`]: what a successful send reports.

use rocketmq_model::MessageQueue;
use rocketmq_model::header::DEFAULT_REGION;
use rocketmq_remoting::calls::SendResponse;

pub use rocketmq_remoting::calls::SendStatus;

/// The broker's answer to a stored message (Java's `SendResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// How durably the message was stored. Anything but
    /// [`SendStatus::SendOk`] still means stored, with degraded durability.
    pub status: SendStatus,
    /// The client's unique id of the message (UNIQ_KEY); for a batch, the
    /// ids of its messages joined by commas.
    pub msg_id: String,
    /// The broker's offset message id (store host and commit-log offset);
    /// comma-joined for a batch.
    pub offset_msg_id: String,
    /// The queue the message was stored in.
    pub message_queue: MessageQueue,
    /// The logical offset in that queue (of the first message of a batch).
    pub queue_offset: i64,
    /// The transaction id of a half message.
    pub transaction_id: Option<String>,
    /// The handle to take the message back with before it is due
    /// ([`Producer::recall_message`](crate::Producer::recall_message)), for a
    /// timer message (`deliver_at`, `delay_time_sec`, `delay_time_ms`) a
    /// 5.3.1+ broker stored.
    pub recall_handle: Option<String>,
    /// The broker's region ("DefaultRegion" when it reports none).
    pub region_id: String,
    /// Whether the broker has message tracing on.
    pub trace_on: bool,
}

impl SendResult {
    pub(crate) fn from_response(
        response: SendResponse,
        msg_id: String,
        topic: &str,
        broker_name: &str,
    ) -> Self {
        let trace_on = response.trace_on();
        let header = response.header;
        SendResult {
            status: response.status,
            msg_id,
            offset_msg_id: header.msg_id,
            message_queue: MessageQueue::new(topic, broker_name, header.queue_id),
            queue_offset: header.queue_offset,
            transaction_id: header.transaction_id,
            recall_handle: header.recall_handle,
            region_id: header
                .msg_region
                .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            trace_on,
        }
    }

    /// Whether the message was stored as configured (SEND_OK).
    pub fn is_ok(&self) -> bool {
        self.status == SendStatus::SendOk
    }
}
