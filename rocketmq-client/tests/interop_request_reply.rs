//! Interop against a real broker: request-reply, answered by a push
//! consumer with `create_reply_message`.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::sync::Arc;

use interop_support::{config, create_topic, msg, namesrv, producer, secs, unique, wait_assigned};
use rocketmq_client::PushConsumer;
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::producer::create_reply_message;
use rocketmq_model::MessageExt;
use rocketmq_model::message::property;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_answers_a_request() {
    let Some(ns) = namesrv("a_consumer_answers_a_request") else {
        return;
    };
    let replier = Arc::new(producer(&ns).await);
    let topic = unique("rr");
    create_topic(&replier, &topic, 2).await;
    // A topic new to the requester: its first request registers it with
    // every broker (heartbeat), so the broker finds it for the reply.
    let requester = producer(&ns).await;
    let answering = Arc::clone(&replier);
    let consumer = PushConsumer::builder(unique("cg"), config(&ns))
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let replier = Arc::clone(&answering);
            async move {
                for request in msgs {
                    let mut body = b"re: ".to_vec();
                    body.extend_from_slice(&request.message.body);
                    let reply = create_reply_message(&request.message, body).unwrap();
                    replier.send(reply).await.unwrap();
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 2).await;
    for n in 0..3 {
        let request = msg(&topic, &format!("ping-{n}"), "ping");
        let reply = requester.request(request, secs(30)).await.unwrap();
        assert_eq!(reply.message.body, format!("re: ping-{n}").as_bytes());
        assert_eq!(
            reply.message.property(property::MSG_TYPE),
            Some(property::MSG_TYPE_REPLY)
        );
    }
    // To a chosen queue, and to a selector's choice.
    let mqs = requester.fetch_publish_queues(&topic).await.unwrap();
    let request = msg(&topic, "to-queue", "ping");
    let reply = requester
        .request_to_queue(request, &mqs[1], secs(30))
        .await
        .unwrap();
    assert_eq!(&reply.message.body[..], b"re: to-queue");
    let first = |_: &[rocketmq_model::MessageQueue], _: &rocketmq_model::Message| Some(0);
    let request = msg(&topic, "by-selector", "ping");
    let reply = requester
        .request_with_selector(request, &first, secs(30))
        .await
        .unwrap();
    assert_eq!(&reply.message.body[..], b"re: by-selector");
    consumer.shutdown().await;
    Arc::try_unwrap(replier).unwrap().shutdown().await;
    requester.shutdown().await;
}
