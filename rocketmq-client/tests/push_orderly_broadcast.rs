//! Orderly consumption (per-queue order kept across a failing message) and
//! broadcasting (every member gets everything; local offsets survive a
//! restart), end to end.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{Seen, config, msg, producer, recording, unique, wait_assigned, wait_until};
use rocketmq_client::PushConsumer;
use rocketmq_client::consumer::{ConsumeFromWhere, MessageModel, OrderlyContext, OrderlyResult};
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;

#[tokio::test(start_paused = true)]
async fn orderly_keeps_queue_order_across_a_failing_message() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for q in 0..2 {
        let mq = MessageQueue::new("T", "broker-a", q);
        for i in 0..10 {
            producer
                .send_to_queue(msg("T", &format!("{q}-{i}"), "x"), &mq)
                .await
                .unwrap();
        }
    }
    let consumed: Arc<Mutex<BTreeMap<i32, Vec<i64>>>> = Arc::default();
    let failed_once = Arc::new(Mutex::new(false));
    let (consumed_in, failed_in) = (Arc::clone(&consumed), Arc::clone(&failed_once));
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("orderly")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_orderly(move |msgs: Vec<MessageExt>, _ctx: OrderlyContext| {
            let (consumed, failed) = (Arc::clone(&consumed_in), Arc::clone(&failed_in));
            async move {
                let m = &msgs[0];
                let mut failed = failed.lock().unwrap();
                if m.queue_id == 0 && m.queue_offset == 5 && !*failed {
                    *failed = true;
                    return OrderlyResult::SuspendCurrentQueue;
                }
                consumed
                    .lock()
                    .unwrap()
                    .entry(m.queue_id)
                    .or_default()
                    .push(m.queue_offset);
                OrderlyResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    wait_until("20 messages", Duration::from_secs(120), || {
        consumed
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 20
    })
    .await;
    assert!(*failed_once.lock().unwrap());
    let consumed = consumed.lock().unwrap().clone();
    let expected: Vec<i64> = (0..10).collect();
    assert_eq!(consumed[&0], expected, "in order, no gap, no duplicate");
    assert_eq!(consumed[&1], expected);
    let broker = cluster.broker(0);
    let client = consumer.client_id().to_owned();
    for q in 0..4 {
        let mq = MessageQueue::new("T", "broker-a", q);
        assert_eq!(
            broker.lock_holder("cg", &mq).as_deref(),
            Some(client.as_str())
        );
    }
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    let mq0 = MessageQueue::new("T", "broker-a", 0);
    assert_eq!(broker.committed_offset("cg", &mq0), Some(10));
    assert_eq!(broker.lock_holder("cg", &mq0), None, "unlocked at shutdown");
    producer.shutdown().await;
}

fn offsets_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rocketmq-client-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(start_paused = true)]
async fn broadcasting_delivers_everything_to_every_member() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let dir = offsets_dir("every");
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let mut consumers = Vec::new();
    for seen in [&seen_a, &seen_b] {
        let consumer = recording(&cluster, &unique("bc"), "cg", "T", seen)
            .message_model(MessageModel::Broadcasting)
            .offset_store_dir(&dir)
            .build()
            .await
            .unwrap();
        wait_assigned(&consumer, 4).await;
        assert_eq!(
            consumer.assigned().len(),
            4,
            "no retry topic when broadcasting"
        );
        consumers.push(consumer);
    }
    let producer = producer(&cluster).await;
    for i in 0..12 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("both got all", Duration::from_secs(60), || {
        seen_a.len() == 12 && seen_b.len() == 12
    })
    .await;
    assert_eq!(seen_a.counts(), seen_b.counts());
    for consumer in consumers {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn broadcasting_offsets_in_local_files_survive_a_restart() {
    restart_goes_on_from_the_local_offsets(&unique("bc-restart"), "restart").await;
}

/// Java keeps the default instance name for broadcasting consumers (it
/// makes it `<pid>#<nanos>` for clustering ones only): the offsets file is
/// found by client id, which must be the same after the restart.
#[tokio::test(start_paused = true)]
async fn broadcasting_offsets_survive_a_restart_with_the_default_instance_name() {
    restart_goes_on_from_the_local_offsets(
        rocketmq_client::config::DEFAULT_INSTANCE_NAME,
        "default",
    )
    .await;
}

async fn restart_goes_on_from_the_local_offsets(instance: &str, dir: &str) {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let dir = offsets_dir(dir);
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let consumer = recording(&cluster, instance, "cg", "T", &seen)
        .message_model(MessageModel::Broadcasting)
        .offset_store_dir(&dir)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    for i in 0..8 {
        producer
            .send(msg("T", &format!("first-{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("the first 8", Duration::from_secs(60), || seen.len() == 8).await;
    let report = consumer.shutdown().await;
    assert_eq!(
        report.offsets_committed.values().sum::<i64>(),
        8,
        "{report:?}"
    );
    let file = dir
        .join(format!("10.7.7.7@{instance}"))
        .join("cg")
        .join("offsets.json");
    assert!(file.exists(), "{file:?}");

    for i in 0..5 {
        producer
            .send(msg("T", &format!("second-{i}"), "x"))
            .await
            .unwrap();
    }
    let again = Seen::default();
    let consumer = recording(&cluster, instance, "cg", "T", &again)
        .message_model(MessageModel::Broadcasting)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .offset_store_dir(&dir)
        .build()
        .await
        .unwrap();
    wait_until("the second 5", Duration::from_secs(60), || again.len() == 5).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        again.bodies().iter().all(|b| b.starts_with("second-")),
        "{:?}",
        again.bodies()
    );
    assert_eq!(again.len(), 5);
    consumer.shutdown().await;
    producer.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Default-named broadcasting consumers each have an instance of their own
/// (one sharing another's would stop with the other's runtime), while their
/// offsets files keep the stable `ip@DEFAULT` directory.
#[tokio::test(start_paused = true)]
async fn default_named_broadcasting_consumers_do_not_share_an_instance() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let dir = offsets_dir("own_instances");
    let default = rocketmq_client::config::DEFAULT_INSTANCE_NAME;
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let a = recording(&cluster, default, "ga", "T", &seen_a)
        .message_model(MessageModel::Broadcasting)
        .offset_store_dir(&dir)
        .build()
        .await
        .unwrap();
    let b = recording(&cluster, default, "gb", "T", &seen_b)
        .message_model(MessageModel::Broadcasting)
        .offset_store_dir(&dir)
        .build()
        .await
        .unwrap();
    assert_ne!(a.client_id(), b.client_id());
    a.shutdown().await;
    b.shutdown().await;
    let stable = dir.join("10.7.7.7@DEFAULT");
    assert!(
        stable.join("ga").join("offsets.json").exists(),
        "{stable:?}"
    );
    assert!(
        stable.join("gb").join("offsets.json").exists(),
        "{stable:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two broadcasting consumers of one group and one client id in a process
/// would write one offsets file over each other: the second is refused (as
/// Java refuses a group registered twice), until the first has shut down.
#[tokio::test(start_paused = true)]
async fn a_second_consumer_of_the_same_offsets_file_is_refused() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let dir = offsets_dir("same_file");
    let default = rocketmq_client::config::DEFAULT_INSTANCE_NAME;
    let seen = Seen::default();
    let build = || {
        recording(&cluster, default, "cg", "T", &seen)
            .message_model(MessageModel::Broadcasting)
            .offset_store_dir(&dir)
            .build()
    };
    let first = build().await.unwrap();
    let refused = build().await.map(|c| c.client_id().to_owned());
    assert!(
        matches!(&refused, Err(rocketmq_client::ClientError::Config(why)) if why.contains("in use")),
        "{refused:?}"
    );
    first.shutdown().await;
    let again = build().await.unwrap();
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A broadcasting pull consumer dropped without shutdown and built again
/// at once finds its offsets file free (the claim goes with the handle,
/// not with the fetch tasks that may run a moment longer).
#[tokio::test(start_paused = true)]
async fn a_dropped_pull_consumer_frees_its_offsets_file_at_once() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let dir = offsets_dir("pull_dropped");
    let build = || {
        rocketmq_client::PullConsumer::builder(
            "pg",
            config(&cluster, rocketmq_client::config::DEFAULT_INSTANCE_NAME),
        )
        .subscribe("T", "*")
        .message_model(MessageModel::Broadcasting)
        .offset_store_dir(&dir)
        .build()
    };
    let first = build().await.unwrap();
    drop(first);
    let again = build().await.unwrap();
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
