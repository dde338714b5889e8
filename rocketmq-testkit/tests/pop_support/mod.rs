//! Helpers of the pop tests: calls as a client makes them, and answers read
//! as a Java client reads them.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_model::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, PopMessageRequestHeader,
    PopMessageResponseHeader, QueryConsumerOffsetRequestHeader,
};
use rocketmq_model::message::pop::{PopTopicKind, ReceiptHandle, parse_start_offset_info};
use rocketmq_model::message::property;
use rocketmq_model::{MessageExt, ResponseCode, decode_records};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{
    AckMessage, ChangeInvisibleTime, PopMessage, PopResponse, PopStatus, QueryConsumerOffset,
};
use rocketmq_testkit::TestCluster;

use crate::common::{TestClient, message, within};

pub(crate) const ADDR: &str = "broker-a:10911";
pub(crate) const GROUP: &str = "cg";
pub(crate) const RETRY: &str = "%RETRY%cg_T";
pub(crate) const INVISIBLE: Duration = Duration::from_secs(30);

pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A pop of `queue_id` (-1: every queue) of topic "T" for [`GROUP`].
pub(crate) fn pop_header(queue_id: i32, max: i32, poll_ms: i64) -> PopMessageRequestHeader {
    PopMessageRequestHeader {
        consumer_group: GROUP.into(),
        topic: "T".into(),
        queue_id,
        max_msg_nums: max,
        invisible_time: i64::try_from(INVISIBLE.as_millis()).unwrap(),
        poll_time: poll_ms,
        born_time: now_ms(),
        init_mode: 0,
        exp_type: Some("TAG".into()),
        exp: Some("*".into()),
        ..PopMessageRequestHeader::default()
    }
}

/// An orderly pop of `queue_id` (-1: every queue).
pub(crate) fn orderly(queue_id: i32, max: i32, poll_ms: i64) -> PopMessageRequestHeader {
    PopMessageRequestHeader {
        order: true,
        ..pop_header(queue_id, max, poll_ms)
    }
}

/// A pop's answer, its messages, and each message's receipt handle and
/// reconsume times as a Java client builds them (the handle from the offset
/// infos, or the POP_CK a redelivered message carries; the reconsume times
/// from `orderCountInfo` for an orderly pop).
pub(crate) struct Popped {
    pub response: PopResponse,
    pub messages: Vec<MessageExt>,
    pub handles: Vec<ReceiptHandle>,
    pub reconsume_times: Vec<i32>,
}

impl Popped {
    pub(crate) fn header(&self) -> &PopMessageResponseHeader {
        self.response.header.as_ref().unwrap()
    }

    pub(crate) fn order_count_info(&self) -> &str {
        self.header().order_count_info.as_deref().unwrap()
    }
}

/// Java's `ExtraInfoUtil.parseOrderCountInfo`: `kind@key` to count.
pub(crate) fn parse_order_count_info(text: &str) -> HashMap<String, i32> {
    let mut counts = HashMap::new();
    if text.is_empty() {
        return counts;
    }
    for entry in text.split(';') {
        let [kind, key, count] = entry.split(' ').collect::<Vec<_>>()[..] else {
            panic!("parse orderCountInfo error, {text}");
        };
        let previous = counts.insert(format!("{kind}@{key}"), count.parse().unwrap());
        assert!(previous.is_none(), "duplicate, {text}");
    }
    counts
}

/// The reconsume times Java's `MQClientAPIImpl.processPopResponse` gives an
/// orderly pop's message: its own `qo<queueId>%<offset>` count, else its
/// queue's, when above 0.
pub(crate) fn java_reconsume_times(counts: &HashMap<String, i32>, message: &MessageExt) -> i32 {
    let own = format!("0@qo{}%{}", message.queue_id, message.queue_offset);
    let queue = format!("0@{}", message.queue_id);
    match counts.get(&own).or_else(|| counts.get(&queue)) {
        Some(&count) if count > 0 => count,
        _ => message.reconsume_times,
    }
}

pub(crate) async fn pop(client: &TestClient, header: PopMessageRequestHeader) -> Popped {
    let response = client.call(ADDR, PopMessage(header)).await.unwrap();
    let messages = if response.status == PopStatus::Found {
        decode_records(response.body.clone()).unwrap()
    } else {
        Vec::new()
    };
    let (handles, reconsume_times) = match &response.header {
        Some(header) if !messages.is_empty() => {
            let starts =
                parse_start_offset_info(header.start_offset_info.as_deref().unwrap()).unwrap();
            let counts = parse_order_count_info(header.order_count_info.as_deref().unwrap_or(""));
            let handles = (messages.iter())
                .map(|m| match m.message.property(property::POP_CK) {
                    Some(ck) => ReceiptHandle::parse(ck).unwrap(),
                    None => ReceiptHandle {
                        ck_queue_offset: starts[&(PopTopicKind::Normal, m.queue_id)],
                        pop_time: header.pop_time,
                        invisible_time: header.invisible_time,
                        revive_qid: header.revive_qid,
                        kind: PopTopicKind::Normal,
                        broker_name: "broker-a".into(),
                        queue_id: m.queue_id,
                        queue_offset: m.queue_offset,
                    },
                })
                .collect();
            let times = (messages.iter())
                .map(|m| java_reconsume_times(&counts, m))
                .collect();
            (handles, times)
        }
        _ => (Vec::new(), Vec::new()),
    };
    Popped {
        response,
        messages,
        handles,
        reconsume_times,
    }
}

pub(crate) fn ack_call(handle: &ReceiptHandle) -> AckMessage {
    AckMessage(AckMessageRequestHeader {
        consumer_group: GROUP.into(),
        topic: handle.kind.real_topic("T", GROUP),
        queue_id: handle.queue_id,
        extra_info: handle.encode(),
        offset: handle.queue_offset,
        broker_name: Some("broker-a".into()),
    })
}

pub(crate) fn change_call(handle: &ReceiptHandle, invisible: Duration) -> ChangeInvisibleTime {
    ChangeInvisibleTime(ChangeInvisibleTimeRequestHeader {
        consumer_group: GROUP.into(),
        topic: handle.kind.real_topic("T", GROUP),
        queue_id: handle.queue_id,
        extra_info: handle.encode(),
        offset: handle.queue_offset,
        invisible_time: i64::try_from(invisible.as_millis()).unwrap(),
        broker_name: Some("broker-a".into()),
    })
}

/// The code and remark a refused call answered.
pub(crate) fn refusal<T: std::fmt::Debug>(
    result: Result<T, RemotingError>,
) -> (ResponseCode, String) {
    match result {
        Err(RemotingError::Response { code, remark, .. }) => (code, remark),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The offset [`GROUP`] has committed on `queue_id` of `topic`.
pub(crate) async fn committed(client: &TestClient, topic: &str, queue_id: i32) -> i64 {
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: GROUP.into(),
        topic: topic.into(),
        queue_id,
        set_zero_if_not_found: Some(false),
        ..QueryConsumerOffsetRequestHeader::default()
    };
    client
        .call(ADDR, QueryConsumerOffset(header))
        .await
        .unwrap()
        .unwrap()
}

/// Waits until the retry topic holds `n` messages.
pub(crate) async fn revived(cluster: &TestCluster, n: usize) {
    let broker = cluster.broker(0);
    within(async {
        while broker.messages(RETRY, 0).len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A cluster with topic "T" (4 queues).
pub(crate) async fn cluster() -> TestCluster {
    TestCluster::builder().topic("T").build().await.unwrap()
}

/// Sends `bodies` (tag "a") to `queue_id` of "T".
pub(crate) async fn send_all(client: &TestClient, queue_id: i32, bodies: &[&str]) {
    for body in bodies {
        client.send(ADDR, &message("T", body, "a"), queue_id).await;
    }
}
