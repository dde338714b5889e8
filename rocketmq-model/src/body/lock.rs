//! Orderly-consumption lock bodies (PROTOCOL.md §7.5, §3.10).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::queue::MessageQueue;

/// LOCK_BATCH_MQ (41) request body.
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    /// The locking client's id.
    #[serde(default)]
    pub client_id: String,
    /// Consumer group.
    #[serde(default)]
    pub consumer_group: String,
    /// Queues to lock.
    #[serde(default)]
    pub mq_set: BTreeSet<MessageQueue>,
    /// 5.x: lock only on this broker (no forwarding to its peers).
    #[serde(default)]
    pub only_this_broker: bool,
}

/// LOCK_BATCH_MQ reply body: the queues now locked by the client.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    /// Locked queues.
    #[serde(rename = "lockOKMQSet", default)]
    pub lock_ok_mq_set: BTreeSet<MessageQueue>,
}

/// UNLOCK_BATCH_MQ (42) request body (same fields as the lock request).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlockBatchRequestBody {
    /// The unlocking client's id.
    #[serde(default)]
    pub client_id: String,
    /// Consumer group.
    #[serde(default)]
    pub consumer_group: String,
    /// Queues to unlock.
    #[serde(default)]
    pub mq_set: BTreeSet<MessageQueue>,
    /// 5.x: unlock only on this broker.
    #[serde(default)]
    pub only_this_broker: bool,
}

standard_json_body!(LockBatchRequestBody);
standard_json_body!(LockBatchResponseBody);
standard_json_body!(UnlockBatchRequestBody);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOCK: &str = r#"{"clientId":"c1","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":0,"topic":"t"}],"onlyThisBroker":false}"#;

    #[test]
    fn java_samples() {
        let body = LockBatchRequestBody::decode(LOCK.as_bytes()).unwrap();
        assert_eq!(body.client_id, "c1");
        assert!(body.mq_set.contains(&MessageQueue::new("t", "b", 0)));
        assert_eq!(String::from_utf8(body.encode().unwrap()).unwrap(), LOCK);
        let unlock = UnlockBatchRequestBody::decode(LOCK.as_bytes()).unwrap();
        assert_eq!(unlock.mq_set, body.mq_set);
        let reply = LockBatchResponseBody::decode(
            br#"{"lockOKMQSet":[{"brokerName":"b","queueId":1,"topic":"t"}]}"#,
        )
        .unwrap();
        assert!(
            reply
                .lock_ok_mq_set
                .contains(&MessageQueue::new("t", "b", 1))
        );
        assert!(LockBatchResponseBody::decode(br#"{"lockOKMQSet":{}}"#).is_err());
    }

    fn arb_mqs() -> impl Strategy<Value = BTreeSet<MessageQueue>> {
        prop::collection::btree_set(
            ("\\PC{0,6}", "\\PC{0,6}", any::<i32>())
                .prop_map(|(t, b, q)| MessageQueue::new(t, b, q)),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn round_trip(client_id in "\\PC{0,8}", consumer_group in "\\PC{0,8}", mq_set in arb_mqs(), only in any::<bool>()) {
            let lock = LockBatchRequestBody { client_id: client_id.clone(), consumer_group: consumer_group.clone(), mq_set: mq_set.clone(), only_this_broker: only };
            prop_assert_eq!(LockBatchRequestBody::decode(&lock.encode().unwrap()).unwrap(), lock);
            let unlock = UnlockBatchRequestBody { client_id, consumer_group, mq_set: mq_set.clone(), only_this_broker: only };
            prop_assert_eq!(UnlockBatchRequestBody::decode(&unlock.encode().unwrap()).unwrap(), unlock);
            let reply = LockBatchResponseBody { lock_ok_mq_set: mq_set };
            prop_assert_eq!(LockBatchResponseBody::decode(&reply.encode().unwrap()).unwrap(), reply);
        }
    }
}
