//! Name-server calls (PROTOCOL.md §3, §7.1): a topic's route, the cluster map.

use rocketmq_model::RequestCode;
use rocketmq_model::header::GetRouteInfoRequestHeader;
use rocketmq_model::route::{ClusterInfo, TopicRouteData};

use crate::call::{Call, parse_success_json};
use crate::command::RemotingCommand;
use crate::error::Result;

/// GET_ROUTEINFO_BY_TOPIC (105): where a topic's queues live.
///
/// Always asks for standard JSON (`acceptStandardJsonOnly=true`, honoured by
/// name servers from 4.9.4); older name servers' bare integer keys are still
/// read. A topic the name server does not know is rejected with
/// TOPIC_NOT_EXIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRouteInfo {
    /// The topic.
    pub topic: String,
}

impl GetRouteInfo {
    /// The route request for `topic`.
    pub fn new(topic: impl Into<String>) -> Self {
        GetRouteInfo {
            topic: topic.into(),
        }
    }
}

impl Call for GetRouteInfo {
    type Response = TopicRouteData;

    fn into_command(self) -> Result<RemotingCommand> {
        let header = GetRouteInfoRequestHeader {
            topic: self.topic,
            accept_standard_json_only: Some(true),
        };
        Ok(RemotingCommand::request_from_header(
            RequestCode::GET_ROUTEINFO_BY_TOPIC,
            header,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<TopicRouteData> {
        parse_success_json(response)
    }
}

/// GET_BROKER_CLUSTER_INFO (106): every broker and cluster the name server
/// knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetClusterInfo;

impl Call for GetClusterInfo {
    type Response = ClusterInfo;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request(
            RequestCode::GET_BROKER_CLUSTER_INFO,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<ClusterInfo> {
        parse_success_json(response)
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;

    use super::*;
    use crate::call::execute;
    use crate::calls::test_support::{answer, assert_rejected, peer, sent_fields};
    use crate::error::RemotingError;

    const ROUTE: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"c"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

    #[test]
    fn route_request_asks_for_standard_json() {
        let cmd = GetRouteInfo::new("T").into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::GET_ROUTEINFO_BY_TOPIC);
        assert_eq!(
            sent_fields(&cmd),
            [("acceptStandardJsonOnly", "true"), ("topic", "T")]
        );
    }

    #[tokio::test]
    async fn route_answer_with_bare_integer_keys_is_read() {
        let (mut svc, _) = peer(answer(ResponseCode::SUCCESS).with_body(ROUTE));
        let route = execute(&mut svc, GetRouteInfo::new("T")).await.unwrap();
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        assert_eq!(route.broker_datas[0].broker_addrs[&0], "10.0.0.1:10911");
    }

    #[test]
    fn unknown_topic_and_bad_bodies_are_errors() {
        let err = GetRouteInfo::parse_response(answer(ResponseCode::TOPIC_NOT_EXIST));
        assert_rejected(err, ResponseCode::TOPIC_NOT_EXIST);
        let empty = GetRouteInfo::parse_response(answer(ResponseCode::SUCCESS));
        assert!(matches!(empty, Err(RemotingError::Model(_))), "{empty:?}");
        let bad = GetRouteInfo::parse_response(answer(ResponseCode::SUCCESS).with_body("{"));
        assert!(matches!(bad, Err(RemotingError::Model(_))), "{bad:?}");
    }

    #[test]
    fn cluster_info_request_and_answer() {
        let cmd = GetClusterInfo.into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::GET_BROKER_CLUSTER_INFO);
        assert!(cmd.ext_fields.is_empty());
        let body = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"c"}},"clusterAddrTable":{"c":["broker-a"]}}"#;
        let info =
            GetClusterInfo::parse_response(answer(ResponseCode::SUCCESS).with_body(body)).unwrap();
        assert!(info.cluster_addr_table["c"].contains("broker-a"));
        assert_eq!(
            info.broker_addr_table["broker-a"].broker_addrs[&0],
            "10.0.0.1:10911"
        );
        let err = GetClusterInfo::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }
}
