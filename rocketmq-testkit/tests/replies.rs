//! Request-reply: SEND_REPLY_MESSAGE(_V2) pushed to the requester as Java's
//! `ReplyMessageProcessor` pushes it, and stored in the reply topic.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rocketmq_model::header::ReplyMessageRequestHeader;
use rocketmq_model::message::property;
use rocketmq_model::{Message, Properties, RequestCode, ResponseCode};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{SendMessage, SendResponse};
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";
const REPLY_TOPIC: &str = "DefaultCluster_REPLY_TOPIC";

/// A reply for the client `to`, as `create_reply_message` makes it.
fn reply_for(to: &str, body: &str) -> Message {
    let mut reply = message(REPLY_TOPIC, body, "reply");
    for (name, value) in [
        (property::MSG_TYPE, property::MSG_TYPE_REPLY),
        (property::CORRELATION_ID, "corr-1"),
        (property::REPLY_TO_CLIENT, to),
        (property::TTL, "3000"),
    ] {
        reply.properties.insert(name, value).unwrap();
    }
    reply
}

async fn send_reply(client: &TestClient, reply: &Message) -> Result<SendResponse, RemotingError> {
    let call = SendMessage::new(send_header(reply, 0), reply.body.clone());
    client.call(ADDR, call).await
}

#[tokio::test(start_paused = true)]
async fn a_reply_is_pushed_to_the_requesting_producer_and_stored() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let route = TestClient::new(&cluster).route(REPLY_TOPIC).await.unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 1, "made at start");
    let requester = TestClient::new(&cluster);
    requester
        .heartbeat(ADDR, producer_heartbeat("10.0.0.5@req", "req_pg"))
        .await;
    let replier = TestClient::new(&cluster);
    let sent = send_reply(&replier, &reply_for("10.0.0.5@req", "pong"))
        .await
        .unwrap();
    let push = requester
        .wait_for(RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT.0)
        .await;
    let header: ReplyMessageRequestHeader = push.decode_header().unwrap();
    assert_eq!(header.topic, REPLY_TOPIC);
    assert_eq!(header.producer_group, "pg");
    let broker = cluster.broker_named("broker-a").unwrap();
    assert_eq!(header.store_host, broker.store_host().to_string());
    assert!(header.born_host.parse::<std::net::SocketAddr>().is_ok());
    let properties = Properties::parse(header.properties.as_deref().unwrap());
    assert_eq!(properties.get(property::CORRELATION_ID), Some("corr-1"));
    assert!(properties.get(property::PUSH_REPLY_TIME).is_some());
    // Marked as Java's broker marks every message it takes.
    assert_eq!(properties.get(property::MSG_REGION), Some("DefaultRegion"));
    assert_eq!(properties.get(property::TRACE_ON), Some("true"));
    assert_eq!(&push.body[..], b"pong");
    let stored = broker.messages(REPLY_TOPIC, 0);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message.property(property::TRACE_ON), Some("true"));
    assert_eq!(sent.header.msg_id, stored[0].offset_msg_id());
    assert_eq!(
        broker.requests_received(RequestCode::SEND_REPLY_MESSAGE_V2),
        1
    );
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_nobody_waits_for_is_a_system_error_and_still_stored() {
    let cluster = TestCluster::builder().build().await.unwrap();
    let replier = TestClient::new(&cluster);
    let error = send_reply(&replier, &reply_for("10.0.0.5@gone", "late"))
        .await
        .unwrap_err();
    match error {
        RemotingError::Response { code, remark, .. } => {
            assert_eq!(code, ResponseCode::SYSTEM_ERROR);
            assert_eq!(
                remark,
                "push reply message fail, channel of <10.0.0.5@gone> not found."
            );
        }
        other => panic!("{other}"),
    }
    let broker = cluster.broker_named("broker-a").unwrap();
    assert_eq!(broker.messages(REPLY_TOPIC, 0).len(), 1);
    cluster.shutdown().await;
}
