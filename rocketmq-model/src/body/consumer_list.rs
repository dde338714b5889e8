//! GET_CONSUMER_LIST_BY_GROUP reply body (PROTOCOL.md §7.6).

use serde::{Deserialize, Serialize};

/// The client ids of a consumer group's members
/// (`GetConsumerListByGroupResponseBody`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerListBody {
    /// Client ids, e.g. "10.0.0.5@12345#98765".
    #[serde(default)]
    pub consumer_id_list: Vec<String>,
}

standard_json_body!(ConsumerListBody);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn java_sample() {
        let body = ConsumerListBody::decode(br#"{"consumerIdList":["10.0.0.5@12345#98765","b"]}"#)
            .unwrap();
        assert_eq!(body.consumer_id_list, ["10.0.0.5@12345#98765", "b"]);
        assert_eq!(
            ConsumerListBody::decode(b"{}")
                .unwrap()
                .consumer_id_list
                .len(),
            0
        );
        assert!(ConsumerListBody::decode(br#"{"consumerIdList":[1]}"#).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(ids in prop::collection::vec("\\PC{0,16}", 0..5)) {
            let body = ConsumerListBody { consumer_id_list: ids };
            prop_assert_eq!(ConsumerListBody::decode(&body.encode().unwrap()).unwrap(), body);
        }
    }
}
