//! Interop against a real broker: message traces of a producer and a push
//! consumer, read back from the trace topic with a pull consumer and the
//! model's decoder of Java's trace format.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::time::Duration;

use interop_support::{
    Seen, config, create_topic, msg, namesrv, recording, secs, unique, wait_assigned, wait_until,
};
use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_client::{Producer, PullConsumer};
use rocketmq_model::body::trace::TraceRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_consumption_are_traced() {
    let Some(addr) = namesrv("sends_and_consumption_are_traced") else {
        return;
    };
    let trace_topic = unique("it_trace_data");
    let topic = unique("it_traced");
    let producer = Producer::builder()
        .client_config(config(&addr))
        .producer_group(unique("pg"))
        .send_msg_timeout(Duration::from_secs(10))
        .trace_topic(trace_topic.as_str())
        .build()
        .await
        .unwrap();
    create_topic(&producer, &trace_topic, 1).await;
    create_topic(&producer, &topic, 2).await;
    let seen = Seen::default();
    let group = unique("cg");
    let consumer = recording(config(&addr), &group, &topic, &seen)
        .trace_topic(trace_topic.as_str())
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 2).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let sent = producer.send(msg(&topic, &format!("m{i}"), "TagA")).await;
        ids.push(sent.unwrap().msg_id);
    }
    wait_until("both consumed", secs(30), || seen.len() >= 2).await;
    consumer.shutdown().await;
    producer.shutdown().await;

    let reader = PullConsumer::builder(unique("trace_reader"), config(&addr))
        .subscribe(trace_topic.as_str(), "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + secs(60);
    while records.len() < 6 && tokio::time::Instant::now() < deadline {
        for m in reader.poll(secs(2)).await.unwrap() {
            let text = std::str::from_utf8(m.body()).unwrap();
            records.extend(TraceRecord::decode_all(text).unwrap());
        }
    }
    reader.shutdown().await;
    for id in &ids {
        let about: Vec<&TraceRecord> = records.iter().filter(|r| r.msg_id() == id).collect();
        let kinds: Vec<&str> = about
            .iter()
            .map(|r| match r {
                TraceRecord::Pub(_) => "Pub",
                TraceRecord::SubBefore(_) => "SubBefore",
                TraceRecord::SubAfter(_) => "SubAfter",
                TraceRecord::EndTransaction(_) => "EndTransaction",
            })
            .collect();
        assert_eq!(kinds.len(), 3, "{id}: {records:?}");
        for kind in ["Pub", "SubBefore", "SubAfter"] {
            assert!(kinds.contains(&kind), "{id}: {kinds:?}");
        }
        for record in about {
            match record {
                TraceRecord::Pub(p) => {
                    assert_eq!(p.topic, topic);
                    assert!(p.success);
                }
                TraceRecord::SubBefore(b) => assert_eq!(b.group, group),
                TraceRecord::SubAfter(a) => assert!(a.success),
                TraceRecord::EndTransaction(_) => unreachable!(),
            }
        }
    }
}
