//! CHECK_CLIENT_CONFIG (46) request body: a consumer asks a broker whether it
//! can serve one of its subscriptions before it starts.

use serde::{Deserialize, Serialize};

use super::heartbeat::SubscriptionData;

/// CHECK_CLIENT_CONFIG (46) request body. The broker answers SUCCESS for a tag
/// subscription, and for an SQL92 one only when it filters by properties
/// (`enablePropertyFilter`) and the expression compiles; SYSTEM_ERROR with
/// the reason otherwise.
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckClientRequestBody {
    /// The asking client's id.
    #[serde(default)]
    pub client_id: String,
    /// Consumer group.
    #[serde(default)]
    pub group: String,
    /// The subscription to check.
    pub subscription_data: SubscriptionData,
}

standard_json_body!(CheckClientRequestBody);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::ExpressionType;

    #[test]
    fn round_trips_with_java_key_names() {
        let body = CheckClientRequestBody {
            client_id: "127.0.0.1@1".into(),
            group: "cg".into(),
            subscription_data: SubscriptionData::from_expression(
                "T",
                "a > 1",
                ExpressionType::Sql92,
            )
            .unwrap(),
        };
        let json = String::from_utf8(body.encode().unwrap()).unwrap();
        assert!(
            json.starts_with(r#"{"clientId":"127.0.0.1@1","group":"cg","subscriptionData":{"#),
            "{json}"
        );
        assert!(json.contains(r#""expressionType":"SQL92""#), "{json}");
        assert!(json.contains(r#""subString":"a > 1""#), "{json}");
        assert_eq!(
            CheckClientRequestBody::decode(json.as_bytes()).unwrap(),
            body
        );
    }
}
