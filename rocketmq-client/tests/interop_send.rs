//! Interop against a real broker: every way of sending (sync, async,
//! oneway, batch, to a queue or a selector's choice, compressed bodies),
//! finding a message by either id, and consuming what was sent
//! with a push consumer, in both header serializations.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::collections::BTreeSet;

use interop_support::{
    Seen, config, config_with, create_topic, msg, namesrv, producer, producer_with, queues,
    recording, secs, unique, wait_assigned, wait_for, wait_until,
};
use rocketmq_client::{ClientConfig, Producer, SendStatus};
use rocketmq_model::message::compression::CompressionType;
use rocketmq_model::message::{property, sysflag};
use rocketmq_model::{Message, MessageQueue};
use rocketmq_remoting::SerializeType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_send_round_trip_json_headers() {
    let Some(ns) = namesrv("sync_send_round_trip_json_headers") else {
        return;
    };
    round_trip(config_with(&ns, SerializeType::Json)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_send_round_trip_rocketmq_binary_headers() {
    let Some(ns) = namesrv("sync_send_round_trip_rocketmq_binary_headers") else {
        return;
    };
    round_trip(config_with(&ns, SerializeType::RocketMq)).await;
}

/// Sends messages with tags, keys and a user property through clients of
/// `config`'s serialization and checks what a consumer of the same
/// serialization gets, field by field.
async fn round_trip(config: ClientConfig) {
    let producer = producer_with(config.clone()).await;
    let topic = unique("it_send");
    create_topic(&producer, &topic, 4).await;
    let seen = Seen::default();
    let mut consumer_config = config;
    consumer_config.instance_name = unique("inst");
    let consumer = recording(consumer_config, &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;

    let mut sent = Vec::new();
    for i in 0..8 {
        let message = Message::builder(topic.as_str())
            .body(format!("m{i}"))
            .tags("TagA")
            .keys([format!("k{i}"), "shared".to_owned()])
            .property("color", "blue")
            .build()
            .unwrap();
        let result = producer.send(message).await.unwrap();
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.message_queue.topic, topic);
        sent.push(result);
    }
    let used: BTreeSet<i32> = sent.iter().map(|r| r.message_queue.queue_id).collect();
    assert_eq!(used.len(), 4, "round robin over the 4 queues: {used:?}");

    wait_until("8 messages consumed", secs(30), || seen.len() >= 8).await;
    for got in seen.all() {
        let body = String::from_utf8_lossy(got.body()).into_owned();
        let i: usize = body[1..].parse().unwrap();
        let result = &sent[i];
        assert_eq!(got.topic(), topic);
        assert_eq!(got.tags(), Some("TagA"));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            [format!("k{i}").as_str(), "shared"]
        );
        assert_eq!(got.property("color"), Some("blue"));
        assert_eq!(
            got.msg_id(),
            result.msg_id,
            "the UNIQ_KEY is the message id"
        );
        assert_eq!(got.offset_msg_id(), result.offset_msg_id);
        assert_eq!(got.queue_id, result.message_queue.queue_id);
        assert_eq!(got.queue_offset, result.queue_offset);
        assert_eq!(got.reconsume_times, 0);
    }
    assert_eq!(seen.distinct(), 8, "{:?}", seen.counts());
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_sends_in_flight_all_arrive_once() {
    let Some(ns) = namesrv("async_sends_in_flight_all_arrive_once") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_async");
    create_topic(&producer, &topic, 4).await;
    let mut handles = Vec::new();
    for i in 0..200 {
        let handle = producer
            .send_async(msg(&topic, &format!("a{i}"), "x"))
            .await
            .unwrap();
        handles.push(handle);
    }
    let mut offsets = BTreeSet::new();
    for handle in handles {
        let result = handle.await.unwrap();
        assert_eq!(result.status, SendStatus::SendOk);
        assert!(offsets.insert((result.message_queue.queue_id, result.queue_offset)));
    }
    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("200 messages consumed", secs(60), || seen.len() >= 200).await;
    assert_eq!(seen.distinct(), 200);
    assert!(seen.counts().values().all(|&n| n == 1), "no duplicates");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_sends_are_stored() {
    let Some(ns) = namesrv("oneway_sends_are_stored") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_oneway");
    create_topic(&producer, &topic, 2).await;
    for i in 0..20 {
        producer
            .send_oneway(msg(&topic, &format!("o{i}"), "x"))
            .await
            .unwrap();
    }
    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("20 oneway messages consumed", secs(30), || seen.len() >= 20).await;
    assert_eq!(seen.distinct(), 20);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_as_consecutive_messages() {
    let Some(ns) = namesrv("a_batch_is_stored_as_consecutive_messages") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_batch");
    create_topic(&producer, &topic, 1).await;
    let batch: Vec<Message> = (0..10)
        .map(|i| {
            Message::builder(topic.as_str())
                .body(format!("b{i}"))
                .tags("batch")
                .key(format!("key-{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let result = producer.send_batch(batch).await.unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    let ids: Vec<&str> = result.msg_id.split(',').collect();
    assert_eq!(ids.len(), 10, "one UNIQ_KEY per message: {}", result.msg_id);

    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("the batch consumed", secs(30), || seen.len() >= 10).await;
    let mut got = seen.all();
    got.sort_by_key(|m| m.queue_offset);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(m.body()), format!("b{i}"));
        assert_eq!(m.queue_offset, result.queue_offset + i as i64);
        assert_eq!(m.tags(), Some("batch"));
        assert_eq!(m.keys().collect::<Vec<_>>(), [format!("key-{i}")]);
        assert_eq!(m.msg_id(), ids[i], "each message keeps its own UNIQ_KEY");
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_batches_give_each_sender_its_own_message() {
    let Some(ns) = namesrv("automatic_batches_give_each_sender_its_own_message") else {
        return;
    };
    let producer = Producer::builder()
        .client_config(config(&ns))
        .producer_group(unique("pg"))
        .send_msg_timeout(std::time::Duration::from_secs(10))
        .auto_batch(true)
        .batch_max_delay(std::time::Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let topic = unique("it_autobatch");
    create_topic(&producer, &topic, 1).await;
    let sends = (0..8).map(|i| producer.send(msg(&topic, &format!("a{i}"), "auto")));
    let results = futures::future::join_all(sends).await;
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let offsets: BTreeSet<i64> = results.iter().map(|r| r.queue_offset).collect();
    assert_eq!(offsets.len(), 8, "each its own offset: {offsets:?}");

    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("the batched messages consumed", secs(30), || {
        seen.len() >= 8
    })
    .await;
    for (i, result) in results.iter().enumerate() {
        let got = seen.all();
        let m = got
            .iter()
            .find(|m| m.queue_offset == result.queue_offset)
            .unwrap();
        assert_eq!(String::from_utf8_lossy(m.body()), format!("a{i}"));
        assert_eq!(m.msg_id(), result.msg_id, "the sender's own id");
        assert_eq!(m.offset_msg_id(), result.offset_msg_id);
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_come_back_whole() {
    let Some(ns) = namesrv("compressed_bodies_come_back_whole") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_zip");
    create_topic(&producer, &topic, 1).await;
    // Over the 4 KiB threshold: sent zlib-compressed with the compressed bit.
    let big: String = (0..2_000).map(|i| format!("{i:05}|")).collect();
    let small = "tiny".to_owned();
    for body in [&big, &small] {
        let message = Message::builder(topic.as_str())
            .body(body.clone())
            .build()
            .unwrap();
        producer.send(message).await.unwrap();
    }
    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("both consumed", secs(30), || seen.len() >= 2).await;
    let got = seen.all();
    let large = got.iter().find(|m| m.body().len() > 4096).unwrap();
    assert_eq!(
        large.body().as_ref(),
        big.as_bytes(),
        "decompressed as sent"
    );
    assert!(
        large.store_size < 4096,
        "stored compressed ({} bytes)",
        large.store_size
    );
    assert_eq!(sysflag::compression_type(large.sys_flag).unwrap(), None);
    let tiny = got.iter().find(|m| m.body().len() < 100).unwrap();
    assert_eq!(tiny.body().as_ref(), small.as_bytes());
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Java 5.x producers may compress with LZ4 or ZSTD (`compressType`): the
/// broker stores the bytes as they are, and the consumer inflates them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_and_zstd_bodies_come_back_whole() {
    let Some(ns) = namesrv("lz4_and_zstd_bodies_come_back_whole") else {
        return;
    };
    let topic = unique("it_lz4zstd");
    let big: String = (0..2_000).map(|i| format!("{i:05}|")).collect();
    for kind in [CompressionType::Lz4, CompressionType::Zstd] {
        let producer = Producer::builder()
            .client_config(config(&ns))
            .producer_group(unique("pg"))
            .send_msg_timeout(secs(10))
            .compress_type(kind)
            .build()
            .await
            .unwrap();
        if kind == CompressionType::Lz4 {
            create_topic(&producer, &topic, 1).await;
        }
        let message = Message::builder(topic.as_str())
            .body(big.clone())
            .tags(format!("{kind:?}"))
            .build()
            .unwrap();
        producer.send(message).await.unwrap();
        producer.shutdown().await;
    }
    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_until("both consumed", secs(30), || seen.len() >= 2).await;
    for msg in seen.all() {
        assert_eq!(msg.body().as_ref(), big.as_bytes(), "{:?}", msg.tags());
        let stored_body = usize::try_from(msg.store_size).unwrap();
        assert!(
            stored_body < big.len(),
            "{:?} stored compressed ({} bytes)",
            msg.tags(),
            msg.store_size
        );
    }
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_chosen_queues_land_there_in_order() {
    let Some(ns) = namesrv("sends_to_chosen_queues_land_there_in_order") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_queue");
    create_topic(&producer, &topic, 4).await;
    let mqs = queues(&producer, &topic).await;
    assert_eq!(mqs.len(), 4);
    for mq in &mqs {
        let mut last = -1;
        for i in 0..5 {
            let body = format!("q{}-{i}", mq.queue_id);
            let result = producer
                .send_to_queue(msg(&topic, &body, "x"), mq)
                .await
                .unwrap();
            assert_eq!(&result.message_queue, mq);
            assert!(result.queue_offset > last, "offsets grow within a queue");
            last = result.queue_offset;
        }
    }
    // A sharding key always picks the same queue.
    let mut chosen = BTreeSet::new();
    for i in 0..6 {
        let message = Message::builder(topic.as_str())
            .body(format!("s{i}"))
            .sharding_key("order-42")
            .build()
            .unwrap();
        assert!(message.property(property::SHARDING_KEY).is_some());
        chosen.insert(producer.send(message).await.unwrap().message_queue);
    }
    assert_eq!(chosen.len(), 1, "{chosen:?}");
    // A batch to a chosen queue lands there, at consecutive offsets.
    let mq = &mqs[2];
    let before = producer.admin().max_offset(mq).await.unwrap();
    let batch = (0..3).map(|i| msg(&topic, &format!("b{i}"), "x")).collect();
    let result = producer.send_batch_to_queue(batch, mq).await.unwrap();
    assert_eq!(&result.message_queue, mq);
    assert_eq!(result.queue_offset, before);
    assert_eq!(producer.admin().max_offset(mq).await.unwrap(), before + 3);
    // The broker knows when the queue's first message was stored.
    let earliest = producer.admin().earliest_msg_store_time(mq).await.unwrap();
    let earliest = earliest.expect("the queue holds messages");
    assert!(earliest <= std::time::SystemTime::now(), "{earliest:?}");
    // Async and oneway sends through a selector land on its choice.
    let fourth = |_: &[MessageQueue], _: &Message| Some(3);
    let before = producer.admin().max_offset(&mqs[3]).await.unwrap();
    let handle = producer
        .send_async_with_selector(msg(&topic, "async-sel", "x"), &fourth)
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap().message_queue, mqs[3]);
    producer
        .send_oneway_with_selector(msg(&topic, "oneway-sel", "x"), &fourth)
        .await
        .unwrap();
    wait_for("the oneway send stored", secs(10), || async {
        producer.admin().max_offset(&mqs[3]).await.unwrap() == before + 2
    })
    .await;
    producer.shutdown().await;
}

/// A send's two ids both find the message (Java's `viewMessage(topic,
/// msgId)`), and an offset search at either boundary brackets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_found_by_either_id_and_either_boundary() {
    let Some(ns) = namesrv("a_message_is_found_by_either_id_and_either_boundary") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_view");
    create_topic(&producer, &topic, 1).await;
    let mq = queues(&producer, &topic).await.remove(0);
    let sent = producer
        .send_to_queue(msg(&topic, "look me up", "x"), &mq)
        .await
        .unwrap();
    let admin = producer.admin();
    for id in [&sent.offset_msg_id, &sent.msg_id] {
        // A lookup by UNIQ_KEY goes through the broker's index, which it
        // builds behind the commit log (rocketmq-broker refuses a query
        // while its index lags): asked again until found.
        let found = std::sync::Mutex::new(None);
        wait_for(&format!("{id} found"), secs(20), || async {
            let view = admin.view_message_in(&topic, id).await.ok().flatten();
            let seen = view.is_some();
            *found.lock().unwrap() = view;
            seen
        })
        .await;
        let found = found.into_inner().unwrap().unwrap();
        assert_eq!(&found.message.body[..], b"look me up", "{id}");
    }
    let later = std::time::SystemTime::now() + secs(3600);
    let lower = admin.search_offset(&mq, later).await.unwrap();
    let upper = admin
        .search_offset_with_boundary(&mq, later, rocketmq_model::header::BoundaryType::Upper)
        .await
        .unwrap();
    // Nothing stored after the hour to come: the lower boundary is the
    // queue's end, the upper one its last message.
    assert_eq!((upper, lower), (sent.queue_offset, sent.queue_offset + 1));
    producer.shutdown().await;
}
