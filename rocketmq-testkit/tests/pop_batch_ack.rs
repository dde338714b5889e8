//! BATCH_ACK_MESSAGE on the testkit broker: what Java's
//! `AckMessageProcessor` answers for bodies it cannot use. (Acknowledging
//! in a batch end to end is tested with the client's `SimpleConsumer`.)

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rocketmq_model::ResponseCode;
use rocketmq_model::body::{BatchAck, BatchAckMessageRequestBody};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::BatchAckMessage;
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";

fn entry(topic: &str, retry: &str, bits: &[u32]) -> BatchAck {
    BatchAck {
        consumer_group: "cg".into(),
        topic: topic.into(),
        retry: retry.into(),
        start_offset: 0,
        queue_id: 0,
        revive_queue_id: 0,
        pop_time: 1,
        invisible_time: 30_000,
        bits: bits.iter().copied().collect(),
    }
}

#[tokio::test(start_paused = true)]
async fn bodies_without_acknowledgements_are_no_message_and_strangers_are_skipped() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let empty = BatchAckMessageRequestBody {
        broker_name: "broker-a".into(),
        acks: Vec::new(),
    };
    match client.call(ADDR, BatchAckMessage(empty)).await {
        Err(RemotingError::Response { code, .. }) => assert_eq!(code, ResponseCode::NO_MESSAGE),
        other => panic!("expected NO_MESSAGE, got {other:?}"),
    }
    // An unknown topic, a retry topic never made, offsets past the queue:
    // all skipped, and the answer is SUCCESS as Java's.
    let strangers = BatchAckMessageRequestBody {
        broker_name: "broker-a".into(),
        acks: vec![
            entry("Nope", "0", &[0]),
            entry("T", "1", &[0, 1]),
            entry("T", "0", &[4_000]),
        ],
    };
    client.call(ADDR, BatchAckMessage(strangers)).await.unwrap();
}
