//! Every remaining `RemotingBrokerApi` call over a recording fake peer (a
//! `tower::service_fn` behind a `ServiceConnector`): the request it sends and
//! how it reads the answer.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rocketmq_kernel::KernelError;
use rocketmq_kernel::api::{
    BrokerApi, CallMode, NameServerApi, RemotingBrokerApi, ServiceConnector,
};
use rocketmq_model::body::UnlockBatchRequestBody;
use rocketmq_model::header::{
    ConsumerSendMsgBackRequestHeader, CreateTopicRequestHeader, EndTransactionRequestHeader,
    QueryMessageRequestHeader, SendMessageRequestHeader, TransactionResolution,
    UnregisterClientRequestHeader,
};
use rocketmq_model::{
    HeartbeatData, Message, MessageExt, MessageQueue, RequestCode, ResponseCode, encode_record,
};
use rocketmq_remoting::calls::{EndTransaction, SendBatch};
use rocketmq_remoting::{RemotingCommand, RemotingError};

/// A peer answering every request with `answer(request)`, recording them.
struct Peer {
    api: RemotingBrokerApi,
    sent: Arc<Mutex<Vec<RemotingCommand>>>,
}

impl Peer {
    fn new(answer: fn(&RemotingCommand) -> RemotingCommand) -> Self {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        let svc = tower::service_fn(move |req: RemotingCommand| {
            let mut response = answer(&req);
            response.opaque = req.opaque;
            log.lock().unwrap().push(req);
            async move { Ok::<_, RemotingError>(response) }
        });
        Peer {
            api: RemotingBrokerApi::with_connector(ServiceConnector::new(svc)),
            sent,
        }
    }

    fn last(&self) -> RemotingCommand {
        self.sent.lock().unwrap().last().cloned().unwrap()
    }
}

fn ok(_req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SUCCESS, 0)
}

const BROKER: &str = "broker-a:10911";

#[tokio::test]
async fn heartbeat_unregister_and_send_back() {
    let peer = Peer::new(|_| {
        let mut response = RemotingCommand::response(ResponseCode::SUCCESS, 0);
        response.version = 479;
        response
    });
    let data = HeartbeatData {
        client_id: "10.0.0.5@1".into(),
        ..HeartbeatData::default()
    };
    assert_eq!(peer.api.heartbeat(BROKER, data).await.unwrap(), 479);
    assert_eq!(peer.last().request_code(), RequestCode::HEART_BEAT);

    let header = UnregisterClientRequestHeader {
        client_id: "10.0.0.5@1".into(),
        producer_group: None,
        consumer_group: Some("cg".into()),
        broker_name: None,
    };
    peer.api.unregister_client(BROKER, header).await.unwrap();
    assert_eq!(peer.last().ext_fields["clientID"], "10.0.0.5@1");

    let header = ConsumerSendMsgBackRequestHeader {
        offset: 4096,
        group: "cg".into(),
        delay_level: 0,
        origin_topic: Some("T".into()),
        max_reconsume_times: Some(16),
        ..ConsumerSendMsgBackRequestHeader::default()
    };
    peer.api.send_back(BROKER, header).await.unwrap();
    let sent = peer.last();
    assert_eq!(sent.request_code(), RequestCode::CONSUMER_SEND_MSG_BACK);
    assert_eq!(sent.ext_fields["offset"], "4096");
}

#[tokio::test]
async fn oneway_calls_set_the_flag_and_ignore_the_answer() {
    let peer = Peer::new(|_| RemotingCommand::response(ResponseCode::SYSTEM_ERROR, 0));
    let header = EndTransactionRequestHeader {
        topic: Some("T".into()),
        producer_group: "pg".into(),
        tran_state_table_offset: 5,
        commit_log_offset: 4096,
        commit_or_rollback: TransactionResolution::Commit,
        from_transaction_check: false,
        msg_id: "7F0000010B2C18B4AAC27A1E4C4B0000".into(),
        transaction_id: None,
        broker_name: None,
    };
    let request = EndTransaction {
        header,
        remark: None,
    };
    peer.api.end_transaction(BROKER, request).await.unwrap();
    let sent = peer.last();
    assert_eq!(sent.request_code(), RequestCode::END_TRANSACTION);
    assert!(sent.is_oneway());

    let body = UnlockBatchRequestBody {
        client_id: "c1".into(),
        consumer_group: "cg".into(),
        mq_set: [MessageQueue::new("T", "broker-a", 0)].into(),
        only_this_broker: false,
    };
    peer.api
        .unlock_batch(BROKER, body.clone(), CallMode::Oneway)
        .await
        .unwrap();
    assert!(peer.last().is_oneway());
    // Waiting for the answer surfaces the broker's verdict.
    let err = peer
        .api
        .unlock_batch(BROKER, body, CallMode::Sync)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        KernelError::Remoting(RemotingError::Response { code: ResponseCode::SYSTEM_ERROR, ref addr, .. })
            if addr == BROKER
    ));
}

fn query_header() -> QueryMessageRequestHeader {
    QueryMessageRequestHeader {
        topic: "T".into(),
        key: "order-1".into(),
        max_num: 32,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
        unique_key_query: false,
        broker_name: None,
    }
}

#[tokio::test]
async fn query_message_decodes_found_messages() {
    let peer = Peer::new(|_| {
        let mut body = BytesMut::new();
        for offset in [3, 4] {
            let ext = MessageExt {
                message: Message::new("T", "m"),
                queue_offset: offset,
                ..MessageExt::default()
            };
            encode_record(&ext, &mut body).unwrap();
        }
        let mut response =
            RemotingCommand::response(ResponseCode::SUCCESS, 0).with_body(body.freeze());
        response
            .ext_fields
            .insert("indexLastUpdateTimestamp", "1000");
        response.ext_fields.insert("indexLastUpdatePhyoffset", "20");
        response
    });
    let found = peer
        .api
        .query_message(BROKER, query_header())
        .await
        .unwrap();
    let offsets: Vec<i64> = found.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [3, 4]);
    assert_eq!(
        found.index_last_update,
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
    );
    assert_eq!(peer.last().ext_fields["key"], "order-1");
}

#[tokio::test]
async fn query_message_not_found_is_empty() {
    let peer = Peer::new(|_| RemotingCommand::response(ResponseCode::QUERY_NOT_FOUND, 0));
    let found = peer
        .api
        .query_message(BROKER, query_header())
        .await
        .unwrap();
    assert!(found.messages.is_empty());
    assert_eq!(found.index_last_update, None);
}

#[tokio::test]
async fn send_batch_and_create_topic() {
    let peer = Peer::new(|req| {
        if req.request_code() == RequestCode::SEND_BATCH_MESSAGE {
            let mut response = RemotingCommand::response(ResponseCode::SUCCESS, 0);
            for (key, value) in [("msgId", "A,B"), ("queueId", "1"), ("queueOffset", "9")] {
                response.ext_fields.insert(key, value);
            }
            response
        } else {
            ok(req)
        }
    });
    let header = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "T".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 1,
        ..SendMessageRequestHeader::default()
    };
    let request = SendBatch {
        header,
        body: bytes::Bytes::from_static(b"batch"),
    };
    let sent = peer
        .api
        .send_batch(BROKER, request, std::time::Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(sent.header.queue_offset, 9);
    assert_eq!(peer.last().ext_fields["m"], "true");

    let header = CreateTopicRequestHeader {
        topic: "NEW".into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 8,
        write_queue_nums: 8,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        ..CreateTopicRequestHeader::default()
    };
    peer.api.create_topic(BROKER, header).await.unwrap();
    let sent = peer.last();
    assert_eq!(sent.request_code(), RequestCode::UPDATE_AND_CREATE_TOPIC);
    assert_eq!(sent.ext_fields["writeQueueNums"], "8");
}

#[tokio::test]
async fn cluster_info_and_name_server_errors() {
    let peer = Peer::new(|req| {
        match req.request_code() {
        RequestCode::GET_BROKER_CLUSTER_INFO => RemotingCommand::response(ResponseCode::SUCCESS, 0)
            .with_body(r#"{"brokerAddrTable":{"b":{"brokerAddrs":{0:"h:1"},"brokerName":"b","cluster":"c"}},"clusterAddrTable":{"c":["b"]}}"#),
        _ => RemotingCommand::response(ResponseCode::SYSTEM_ERROR, 0).with_remark("name server not ready"),
    }
    });
    let info = peer.api.cluster_info().await.unwrap();
    assert_eq!(info.broker_addr_table["b"].master_addr(), Some("h:1"));
    // Only TOPIC_NOT_EXIST means "no route"; other failures stay what they are.
    let err = peer.api.topic_route("T").await.unwrap_err();
    assert!(
        matches!(
            &err,
            KernelError::Remoting(RemotingError::Response {
                code: ResponseCode::SYSTEM_ERROR,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.is_retriable());
}
