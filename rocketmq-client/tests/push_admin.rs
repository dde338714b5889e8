//! The broker's requests about a push consumer, end to end:
//! RESET_CONSUMER_CLIENT_OFFSET, GET_CONSUMER_RUNNING_INFO,
//! GET_CONSUMER_STATUS_FROM_CLIENT, CONSUME_MESSAGE_DIRECTLY; and lag,
//! suspend and resume.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::time::Duration;

use consumer_support::{
    Seen, msg, owned, producer, recording, unique, wait_assigned, wait_for, wait_until,
};
use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, PushConsumerBuilder,
};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_model::body::ConsumeResult;
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;

/// A cluster with topic `T`, a producer, and a recording push consumer of
/// `cg` from the first offset (`tweak` adds to its builder) that has
/// consumed 12 messages.
async fn consumed_twelve(
    instance: &str,
    tweak: impl FnOnce(PushConsumerBuilder) -> PushConsumerBuilder,
) -> (TestCluster, Producer, Seen, PushConsumer) {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let builder = recording(&cluster, &unique(instance), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset);
    let consumer = tweak(builder).build().await.unwrap();
    for i in 0..12 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("12 messages", Duration::from_secs(60), || seen.len() == 12).await;
    (cluster, producer, seen, consumer)
}

/// A cluster with topic `T`, a producer, and a recording push consumer of
/// `cg` from the first offset, subscribed to tag A, that has consumed eight
/// A messages.
async fn consumed_eight_a(instance: &str) -> (TestCluster, Producer, Seen, PushConsumer) {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique(instance), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    consumer.subscribe("T", "A").await.unwrap();
    for i in 0..8 {
        producer
            .send(msg("T", &format!("a{i}"), "A"))
            .await
            .unwrap();
    }
    wait_until("the A messages", Duration::from_secs(60), || {
        seen.len() == 8
    })
    .await;
    (cluster, producer, seen, consumer)
}

#[tokio::test(start_paused = true)]
async fn reset_consumer_client_offset_takes_effect() {
    let (cluster, producer, seen, consumer) = consumed_twelve("reset", |b| b).await;
    let pushed = cluster
        .broker(0)
        .reset_offset("cg", "T", 0, true)
        .await
        .unwrap();
    assert_eq!(pushed.len(), 4);
    assert!(pushed.values().all(|offset| *offset == 0), "{pushed:?}");
    wait_until("everything again", Duration::from_secs(60), || {
        seen.len() == 24
    })
    .await;
    assert!(seen.counts().values().all(|n| *n == 2));
    wait_assigned(&consumer, 4).await;
    let report = consumer.shutdown().await;
    let committed: i64 = report
        .offsets_committed
        .iter()
        .filter(|(mq, _)| mq.topic == "T")
        .map(|(_, offset)| offset)
        .sum();
    assert_eq!(committed, 12, "{report:?}");
    producer.shutdown().await;
}

/// `mqadmin resetOffsetByTime` makes every broker send a reset naming its
/// own queues. A reset from broker A restarted every queue of the topic,
/// so a message of broker B being consumed was abandoned and consumed a
/// second time; as Java's `resetOffset`, only the named queues restart.
#[tokio::test(start_paused = true)]
async fn a_reset_from_one_broker_leaves_the_other_brokers_queues_alone() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let (a, b) = (cluster.broker(0), cluster.broker(1));
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer =
        PushConsumer::builder("cg", consumer_support::config(&cluster, &unique("reset2")))
            .subscribe("T", "*")
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
                let seen = seen_in.clone();
                async move {
                    seen.push(&msgs);
                    if msgs[0].body().starts_with(b"slow") {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    ConcurrentResult::Success
                }
            })
            .build()
            .await
            .unwrap();
    wait_assigned(&consumer, 8).await;
    // Broker A's queues get committed offsets.
    let queue_of = |broker: &str, q| MessageQueue::new("T", broker, q);
    for q in 0..4 {
        let mq = queue_of(a.name(), q);
        producer
            .send_to_queue(msg("T", &format!("a{q}"), "x"), &mq)
            .await
            .unwrap();
    }
    wait_until(
        "broker A's offsets committed",
        Duration::from_secs(60),
        || (0..4).all(|q| a.committed_offset("cg", &queue_of(a.name(), q)) == Some(1)),
    )
    .await;
    // A slow message of broker B is being consumed when broker A resets its
    // own queues to where they are.
    let mq_b = queue_of(b.name(), 0);
    producer
        .send_to_queue(msg("T", "slow-b", "x"), &mq_b)
        .await
        .unwrap();
    wait_until("slow-b in the listener", Duration::from_secs(60), || {
        seen.counts().contains_key("slow-b")
    })
    .await;
    let table = a.reset_offset("cg", "T", -1, false).await.unwrap();
    assert!(
        table.keys().all(|mq| mq.broker_name == a.name()),
        "{table:?}"
    );
    // What follows slow-b on its queue comes after any second delivery of it.
    producer
        .send_to_queue(msg("T", "after-b", "x"), &mq_b)
        .await
        .unwrap();
    wait_until("after-b consumed", Duration::from_secs(60), || {
        seen.counts().contains_key("after-b")
    })
    .await;
    let counts = seen.counts();
    assert_eq!(counts["slow-b"], 1, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reset_holds_while_the_broker_cannot_be_asked_for_offsets() {
    let (cluster, producer, seen, consumer) = consumed_twelve("reset_blind", |b| b).await;
    let broker = cluster.broker(0);
    // The reset needs no offset query (Java's updateOffset asks nothing):
    // while queries fail, it still takes effect.
    broker.fail_requests(
        rocketmq_model::RequestCode::QUERY_CONSUMER_OFFSET,
        rocketmq_model::ResponseCode::SYSTEM_ERROR,
        4,
    );
    broker.reset_offset("cg", "T", 0, true).await.unwrap();
    wait_until("everything again", Duration::from_secs(120), || {
        seen.len() == 24
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_subscription_changed_during_a_reset_is_kept() {
    let (cluster, producer, seen, consumer) = consumed_eight_a("reset_sub").await;
    let broker = cluster.broker(0);
    wait_until("offsets persisted", Duration::from_secs(60), || {
        (0..4).all(|q| {
            broker.committed_offset("cg", &MessageQueue::new("T", "broker-a", q)) == Some(2)
        })
    })
    .await;
    // Slow offset writes (within the 3 s request timeout) hold the reset
    // open while the app changes its mind.
    broker.delay_responses(
        rocketmq_model::RequestCode::UPDATE_CONSUMER_OFFSET,
        Duration::from_secs(2),
    );
    let change = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        consumer.subscribe("T", "B").await.unwrap();
    };
    let (reset, ()) = tokio::join!(broker.reset_offset("cg", "T", 0, true), change);
    reset.unwrap();
    broker.delay_responses(
        rocketmq_model::RequestCode::UPDATE_CONSUMER_OFFSET,
        Duration::ZERO,
    );
    for i in 0..4 {
        producer
            .send(msg("T", &format!("b{i}"), "B"))
            .await
            .unwrap();
    }
    wait_until("the B messages", Duration::from_secs(120), || {
        seen.bodies().iter().filter(|b| b.starts_with('b')).count() == 4
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// An application's own store, written without `force`: it delegates the
/// rest to a memory store.
struct OwnStore(rocketmq_kernel::offset::MemoryOffsetStore);

#[async_trait::async_trait]
impl rocketmq_kernel::OffsetStore for OwnStore {
    async fn load(&self) -> rocketmq_kernel::Result<()> {
        self.0.load().await
    }
    fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) -> bool {
        self.0.update(mq, offset, increase_only)
    }
    async fn read(
        &self,
        mq: &MessageQueue,
        from: rocketmq_kernel::ReadOffsetType,
    ) -> rocketmq_kernel::Result<Option<i64>> {
        self.0.read(mq, from).await
    }
    async fn persist(&self, mq: &MessageQueue) -> rocketmq_kernel::Result<()> {
        self.0.persist(mq).await
    }
    async fn persist_all(&self) -> rocketmq_kernel::Result<()> {
        self.0.persist_all().await
    }
    fn remove(&self, mq: &MessageQueue) {
        self.0.remove(mq);
    }
    fn snapshot(&self) -> std::collections::BTreeMap<MessageQueue, i64> {
        self.0.snapshot()
    }
}

#[tokio::test(start_paused = true)]
async fn a_reset_takes_effect_with_a_store_written_before_force() {
    let (cluster, producer, seen, consumer) = consumed_twelve("own_store", |b| {
        b.offset_store(std::sync::Arc::new(OwnStore(
            rocketmq_kernel::offset::MemoryOffsetStore::new(),
        )))
    })
    .await;
    // Pulls carry the memory store's offsets to the broker (the commit flag).
    let broker = cluster.broker(0);
    wait_until(
        "offsets committed by pulls",
        Duration::from_secs(60),
        || {
            (0..4).all(|q| {
                broker.committed_offset("cg", &MessageQueue::new("T", "broker-a", q)) == Some(3)
            })
        },
    )
    .await;
    broker.reset_offset("cg", "T", 0, true).await.unwrap();
    wait_until("everything again", Duration::from_secs(60), || {
        seen.len() == 24
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn running_info_status_and_direct_consumption_answer_with_real_figures() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("info"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let mut last = None;
    for i in 0..8 {
        last = Some(
            producer
                .send(msg("T", &format!("m{i}"), "x"))
                .await
                .unwrap(),
        );
    }
    wait_until("8 messages", Duration::from_secs(60), || seen.len() == 8).await;
    wait_until("offsets committed", Duration::from_secs(60), || {
        consumer
            .committed_offsets()
            .iter()
            .filter(|(mq, _)| mq.topic == "T")
            .map(|(_, o)| o)
            .sum::<i64>()
            == 8
    })
    .await;
    let broker = cluster.broker(0);
    let client_id = consumer.client_id().to_owned();
    // Rates are per second of tokio time, which a paused clock may not
    // have advanced yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let info = broker
        .consumer_running_info("cg", &client_id, false)
        .await
        .unwrap();
    let topics: Vec<&str> = info
        .subscription_set
        .iter()
        .map(|s| s.topic.as_str())
        .collect();
    assert!(
        topics.contains(&"T") && topics.contains(&"%RETRY%cg"),
        "{topics:?}"
    );
    let committed = consumer.committed_offsets();
    let queues: Vec<&MessageQueue> = info.mq_table.keys().filter(|mq| mq.topic == "T").collect();
    assert_eq!(queues.len(), 4, "{:?}", info.mq_table);
    for mq in queues {
        let pq = &info.mq_table[mq];
        assert_eq!(pq.commit_offset, committed[mq], "{mq}");
        assert_eq!(pq.cached_msg_count, 0);
        assert!(!pq.dropped);
        assert!(pq.last_pull_timestamp > 0);
    }
    assert_eq!(
        info.properties.get("PROP_CONSUME_TYPE").map(String::as_str),
        Some("CONSUME_PASSIVELY")
    );
    assert_eq!(
        info.properties
            .get("PROP_CONSUMEORDERLY")
            .map(String::as_str),
        Some("false")
    );
    let status = &info.status_table["T"];
    assert!(status.consume_ok_tps > 0.0, "{status:?}");
    assert_eq!(status.consume_failed_msgs, 0);

    let offsets = broker.consumer_status("cg", "T").await.unwrap();
    assert_eq!(offsets[&client_id].values().sum::<i64>(), 8);

    let sent = last.unwrap();
    let direct = broker
        .consume_message_directly("cg", &client_id, &sent.offset_msg_id)
        .await
        .unwrap();
    assert_eq!(direct.consume_result, Some(ConsumeResult::Success));
    assert!(!direct.order);
    assert_eq!(seen.len(), 9, "the listener ran once more");
    assert_eq!(seen.bodies()[8], "m7");

    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn lag_grows_while_suspended_and_drains_after_resume() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("lag"), "cg", "T", &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    producer.send(msg("T", "warm-up", "x")).await.unwrap();
    wait_until("warm-up", Duration::from_secs(60), || seen.len() == 1).await;
    consumer.suspend();
    assert!(consumer.is_suspended());
    // Pulls in flight may still deliver; wait for their long polls to end.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let before = seen.len();
    for i in 0..6 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(seen.len(), before, "nothing pulled while suspended");
    let lag = consumer.lag().await.unwrap();
    let owned_queues = owned(&consumer);
    let total: i64 = lag
        .iter()
        .filter(|(mq, _)| owned_queues.contains(mq))
        .map(|(_, l)| l)
        .sum();
    assert_eq!(total, 7 - before as i64, "{lag:?}");
    consumer.resume();
    wait_until("drained", Duration::from_secs(60), || seen.len() == 7).await;
    wait_for_zero_lag(&consumer).await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

async fn wait_for_zero_lag(consumer: &rocketmq_client::PushConsumer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lag = consumer.lag().await.unwrap();
        if lag.values().all(|l| *l == 0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag stays {lag:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_orderly_consumer_reports_its_locks_and_consumes_directly() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer = rocketmq_client::PushConsumer::builder(
        "cg",
        consumer_support::config(&cluster, &unique("orderly-info")),
    )
    .subscribe("T", "*")
    .consume_orderly(
        move |msgs: Vec<rocketmq_model::MessageExt>,
              ctx: rocketmq_client::consumer::OrderlyContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                let result = if msgs[0].body().as_ref() == b"later" {
                    rocketmq_client::consumer::OrderlyResult::SuspendCurrentQueue
                } else {
                    rocketmq_client::consumer::OrderlyResult::Success
                };
                let mut ctx = ctx;
                ctx.auto_commit = false;
                (result, ctx)
            }
        },
    )
    .build()
    .await
    .unwrap();
    wait_assigned(&consumer, 4).await;
    let sent = producer.send(msg("T", "later", "x")).await.unwrap();
    wait_until("consumed", Duration::from_secs(60), || !seen.is_empty()).await;
    let broker = cluster.broker(0);
    let client_id = consumer.client_id().to_owned();
    let info = broker
        .consumer_running_info("cg", &client_id, false)
        .await
        .unwrap();
    assert_eq!(
        info.properties
            .get("PROP_CONSUMEORDERLY")
            .map(String::as_str),
        Some("true")
    );
    assert!(
        info.mq_table
            .iter()
            .filter(|(mq, _)| mq.topic == "T")
            .all(|(_, pq)| pq.locked)
    );
    let direct = broker
        .consume_message_directly("cg", &client_id, &sent.offset_msg_id)
        .await
        .unwrap();
    assert_eq!(direct.consume_result, Some(ConsumeResult::Later));
    assert!(direct.order);
    assert!(!direct.auto_commit);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_selector_changed_while_running_selects_the_next_messages() {
    let (cluster, producer, seen, consumer) = consumed_eight_a("resub").await;
    // The queues' pulls are held at the broker, filtering for A, when the
    // selector changes: what comes next is filtered for B, at the broker
    // (as Java re-runs a held pull) and in the client.
    consumer.subscribe("T", "B").await.unwrap();
    for i in 0..4 {
        producer
            .send(msg("T", &format!("b{i}"), "B"))
            .await
            .unwrap();
    }
    wait_until("the B messages", Duration::from_secs(60), || {
        seen.len() == 12
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// The broker's view of a group's lag (GET_CONSUME_STATS, Java's admin
/// `examineConsumeStats`), asked by another client: none once the
/// consumer's offsets are persisted, then what arrived while it was
/// suspended; without a topic, every topic the group committed in.
#[tokio::test(start_paused = true)]
async fn the_brokers_report_a_groups_lag_to_an_admin() {
    let (cluster, producer, _seen, consumer) = consumed_twelve("stats", |b| b).await;
    let admin = producer.admin();
    let stats = || admin.consume_stats("cg", Some("T"));
    wait_for(
        "the consumer's offsets persisted",
        Duration::from_secs(60),
        || async { stats().await.unwrap().total_lag() == 0 },
    )
    .await;
    let caught_up = stats().await.unwrap();
    assert_eq!(caught_up.offset_table.len(), 4, "{caught_up:?}");
    let stored: i64 = (caught_up.offset_table.values())
        .map(|q| q.broker_offset)
        .sum();
    assert_eq!(stored, 12);
    for (mq, offsets) in &caught_up.offset_table {
        assert_eq!(mq.topic, "T");
        if offsets.consumer_offset > 0 {
            assert!(offsets.last_timestamp > 0, "{mq}: {offsets:?}");
        }
    }

    consumer.suspend();
    for i in 0..5 {
        producer
            .send(msg("T", &format!("late{i}"), "x"))
            .await
            .unwrap();
    }
    assert_eq!(stats().await.unwrap().total_lag(), 5);
    let every_topic = admin.consume_stats("cg", None).await.unwrap();
    let topics: std::collections::BTreeSet<&str> = (every_topic.offset_table.keys())
        .map(|mq| mq.topic.as_str())
        .collect();
    assert!(topics.contains("T"), "{topics:?}");
    assert_eq!(every_topic.total_lag(), 5);
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}
