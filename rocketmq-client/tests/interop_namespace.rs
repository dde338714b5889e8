//! Interop against a real broker: a producer and a push consumer in a
//! namespace. The broker stores `ns%T`, registers `ns%group` and redelivers
//! through `%RETRY%ns%group`; the application names `T` and gets `T` back.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use interop_support::{config, msg, namesrv, secs, unique, wait_assigned, wait_route, wait_until};
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer, SendStatus};
use rocketmq_model::MessageExt;
use rocketmq_model::header::CreateTopicRequestHeader;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_round_trip_with_one_redelivery() {
    let Some(addr) = namesrv("a_namespaced_round_trip_with_one_redelivery") else {
        return;
    };
    let namespace = unique("ns");
    let producer = Producer::builder()
        .client_config(config(&addr))
        .namespace(namespace.as_str())
        .producer_group(unique("pg"))
        .send_msg_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let topic = unique("it_ns");
    let wire_topic = format!("{namespace}%{topic}");
    // The producer's admin creates the topic in its namespace.
    let created = producer
        .admin()
        .create_topic_in_cluster(
            interop_support::CLUSTER,
            CreateTopicRequestHeader::new(topic.as_str(), 4),
        )
        .await
        .unwrap();
    assert!(!created.is_empty());
    wait_route(&producer, &wire_topic).await;

    let seen = Arc::new(Mutex::new(Vec::<(MessageExt, String)>::new()));
    let record = Arc::clone(&seen);
    let consumer = PushConsumer::builder(unique("cg"), config(&addr))
        .namespace(namespace.as_str())
        .subscribe(topic.as_str(), "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, ctx: ConcurrentContext| {
            let record = Arc::clone(&record);
            async move {
                let mut seen = record.lock().unwrap();
                let first_time = seen.is_empty();
                seen.extend(msgs.into_iter().map(|m| (m, ctx.mq.topic.clone())));
                if first_time {
                    ConcurrentResult::RetryLater
                } else {
                    ConcurrentResult::Success
                }
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;

    let sent = producer.send(msg(&topic, "m", "x")).await.unwrap();
    assert_eq!(sent.status, SendStatus::SendOk);
    assert_eq!(sent.message_queue.topic, topic);
    // Stored under the namespace's name, which an admin without the
    // namespace shows, and the producer's admin takes off.
    let plain_admin = producer.instance().admin();
    let stored = plain_admin.view_message(&sent.offset_msg_id).await.unwrap();
    assert_eq!(stored.topic(), wire_topic);
    let viewed = producer.admin().view_message(&sent.offset_msg_id).await;
    assert_eq!(viewed.unwrap().topic(), topic);

    // Delivered, failed once, redelivered through the group's retry topic
    // (its first level waits 10 s).
    wait_until("the message and its redelivery", secs(60), || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    for (got, _) in &seen {
        assert_eq!(got.topic(), topic);
        assert_eq!(got.message.uniq_key(), Some(sent.msg_id.as_str()));
    }
    assert_eq!(seen[1].0.reconsume_times, 1);
    let retry_topic = format!("%RETRY%{}", consumer.group().split_once('%').unwrap().1);
    assert_eq!(seen[0].1, topic);
    assert_eq!(seen[1].1, retry_topic, "redelivered from the retry queue");
    assert_eq!(
        consumer.group(),
        format!("{namespace}%{}", &retry_topic[7..])
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}
