//! Broker-side rebalance bodies (5.x): QUERY_ASSIGNMENT (400) asks a broker
//! which queues of a topic a client should consume and how (pull or pop);
//! SET_MESSAGE_REQUEST_MODE (401) is the administrator's switch of a
//! topic and group between the two (PROTOCOL.md §3.14).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::body::MessageModel;
use crate::queue::MessageQueue;

/// How a client reads an assigned queue (Java `MessageRequestMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MessageRequestMode {
    /// Pull the queue from an offset the client keeps (the classic way).
    #[default]
    #[serde(rename = "PULL")]
    Pull,
    /// Pop it: the broker keeps the offset and hides what it hands out until
    /// acknowledged or its invisible time passes, so several clients may
    /// share a queue (a queue id of -1 stands for every queue of its broker).
    #[serde(rename = "POP")]
    Pop,
}

/// QUERY_ASSIGNMENT (400) request body.
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryAssignmentRequestBody {
    /// The asking client's id.
    #[serde(default)]
    pub client_id: String,
    /// Consumer group.
    #[serde(default)]
    pub consumer_group: String,
    /// Clustering or broadcasting.
    #[serde(default)]
    pub message_model: MessageModel,
    /// The allocation strategy's name (Java's brokers know `AVG` and
    /// `AVG_BY_CIRCLE`; any other is answered with no assignment).
    #[serde(default)]
    pub strategy_name: String,
    /// The topic.
    #[serde(default)]
    pub topic: String,
}

/// One assigned queue and how to read it (Java `MessageQueueAssignment`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueueAssignment {
    /// Extra facts; Java's brokers send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<BTreeMap<String, String>>,
    /// The queue; Java's client skips an assignment without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_queue: Option<MessageQueue>,
    /// Pull or pop.
    #[serde(default)]
    pub mode: MessageRequestMode,
}

/// QUERY_ASSIGNMENT reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryAssignmentResponseBody {
    /// The client's queues. Absent (`None`) when the broker could not tell
    /// (unknown topic, group or strategy): the client then keeps what it
    /// has. Empty: the client is to let every queue of the topic go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_queue_assignments: Option<Vec<MessageQueueAssignment>>,
}

/// SET_MESSAGE_REQUEST_MODE (401) request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetMessageRequestModeRequestBody {
    /// Consumer group.
    #[serde(default)]
    pub consumer_group: String,
    /// The mode the group's clients are told to use for the topic.
    #[serde(default)]
    pub mode: MessageRequestMode,
    /// Pop mode: how many of the clients that follow a client in the sorted
    /// client list share their queues with it; 0 or less, or at least the
    /// number of clients less one, lets every client pop every queue.
    #[serde(default)]
    pub pop_share_queue_num: i32,
    /// The topic.
    #[serde(default)]
    pub topic: String,
}

standard_json_body!(QueryAssignmentRequestBody);
standard_json_body!(QueryAssignmentResponseBody);
standard_json_body!(SetMessageRequestModeRequestBody);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn java_samples() {
        // As fastjson writes them (keys sorted, null fields left out).
        let request = r#"{"clientId":"10.0.0.1@1","consumerGroup":"g","messageModel":"CLUSTERING","strategyName":"AVG","topic":"T"}"#;
        let body = QueryAssignmentRequestBody::decode(request.as_bytes()).unwrap();
        assert_eq!(body.strategy_name, "AVG");
        assert_eq!(body.message_model, MessageModel::Clustering);
        assert_eq!(String::from_utf8(body.encode().unwrap()).unwrap(), request);

        let reply = br#"{"messageQueueAssignments":[{"messageQueue":{"brokerName":"b","queueId":-1,"topic":"T"},"mode":"POP"},{"messageQueue":{"brokerName":"b","queueId":2,"topic":"T"},"mode":"PULL"}]}"#;
        let body = QueryAssignmentResponseBody::decode(reply).unwrap();
        let assignments = body.message_queue_assignments.unwrap();
        assert_eq!(assignments[0].mode, MessageRequestMode::Pop);
        assert_eq!(
            assignments[0].message_queue,
            Some(MessageQueue::new("T", "b", -1))
        );
        assert_eq!(assignments[1].mode, MessageRequestMode::Pull);

        // No assignment at all (Java's null set) is not an empty one.
        let none = QueryAssignmentResponseBody::decode(b"{}").unwrap();
        assert_eq!(none.message_queue_assignments, None);
        let empty =
            QueryAssignmentResponseBody::decode(br#"{"messageQueueAssignments":[]}"#).unwrap();
        assert_eq!(empty.message_queue_assignments, Some(Vec::new()));

        let mode = r#"{"consumerGroup":"g","mode":"POP","popShareQueueNum":1,"topic":"T"}"#;
        let body = SetMessageRequestModeRequestBody::decode(mode.as_bytes()).unwrap();
        assert_eq!(body.mode, MessageRequestMode::Pop);
        assert_eq!(body.pop_share_queue_num, 1);
        assert_eq!(String::from_utf8(body.encode().unwrap()).unwrap(), mode);
    }

    #[test]
    fn an_unknown_mode_is_an_error_naming_the_body() {
        let err = QueryAssignmentResponseBody::decode(
            br#"{"messageQueueAssignments":[{"messageQueue":{"brokerName":"b","queueId":0,"topic":"T"},"mode":"PUSH"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("QueryAssignmentResponseBody"),
            "{err}"
        );
    }

    fn arb_mode() -> impl Strategy<Value = MessageRequestMode> {
        prop_oneof![
            Just(MessageRequestMode::Pull),
            Just(MessageRequestMode::Pop)
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            topic in "\\PC{0,8}",
            broker in "\\PC{0,6}",
            queue_id in any::<i32>(),
            mode in arb_mode(),
            share in any::<i32>(),
            with_queue in any::<bool>(),
        ) {
            let reply = QueryAssignmentResponseBody {
                message_queue_assignments: Some(vec![MessageQueueAssignment {
                    attachments: None,
                    message_queue: with_queue.then(|| MessageQueue::new(topic.clone(), broker.clone(), queue_id)),
                    mode,
                }]),
            };
            prop_assert_eq!(QueryAssignmentResponseBody::decode(&reply.encode().unwrap()).unwrap(), reply);
            let set = SetMessageRequestModeRequestBody {
                consumer_group: broker.clone(),
                mode,
                pop_share_queue_num: share,
                topic: topic.clone(),
            };
            prop_assert_eq!(SetMessageRequestModeRequestBody::decode(&set.encode().unwrap()).unwrap(), set);
            let query = QueryAssignmentRequestBody {
                client_id: broker,
                consumer_group: topic.clone(),
                message_model: MessageModel::Broadcasting,
                strategy_name: "AVG".into(),
                topic,
            };
            prop_assert_eq!(QueryAssignmentRequestBody::decode(&query.encode().unwrap()).unwrap(), query);
        }
    }
}
