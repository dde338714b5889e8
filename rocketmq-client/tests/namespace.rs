//! Clients in a namespace against the testkit: the brokers see `ns%T`,
//! `ns%group` and `%RETRY%ns%group`, while the application names `T` and
//! `group` and gets `T` back in everything it receives.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use consumer_support::{config, msg, unique, wait_until};
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::producer::{LocalTransactionState, TransactionListener, create_reply_message};
use rocketmq_client::{ClientError, Producer, PullConsumer, PushConsumer};
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;

const NS: &str = "tenant1";
const WIRE_TOPIC: &str = "tenant1%T";

async fn cluster() -> TestCluster {
    TestCluster::builder()
        .topic(WIRE_TOPIC)
        .build()
        .await
        .unwrap()
}

async fn producer(cluster: &TestCluster, group: &str) -> Producer {
    Producer::builder()
        .client_config(config(cluster, &unique("ns-producer")))
        .namespace(NS)
        .producer_group(group)
        .build()
        .await
        .unwrap()
}

fn stored(cluster: &TestCluster, topic: &str) -> Vec<MessageExt> {
    let broker = cluster.broker(0);
    (0..4).flat_map(|q| broker.messages(topic, q)).collect()
}

fn topics<'a>(queues: impl IntoIterator<Item = &'a MessageQueue>) -> BTreeSet<String> {
    queues.into_iter().map(|mq| mq.topic.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn sends_and_push_consumption_name_topics_without_the_namespace() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "pg").await;
    let sent = producer.send(msg("T", "first", "x")).await.unwrap();
    assert_eq!(sent.message_queue.topic, "T");
    assert_eq!(stored(&cluster, WIRE_TOPIC).len(), 1);
    let groups = cluster.broker(0).groups();
    assert!(groups.producers.iter().any(|g| g.group == "tenant1%pg"));

    // The listener asks for "again" once more, so it comes back through
    // the group's retry topic.
    let seen = Arc::new(Mutex::new(Vec::<(MessageExt, MessageQueue)>::new()));
    let record = Arc::clone(&seen);
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("ns-push")))
        .namespace(NS)
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, ctx: ConcurrentContext| {
            let record = Arc::clone(&record);
            async move {
                let mut seen = record.lock().unwrap();
                let again = msgs.iter().any(|m| &m.body()[..] == b"again");
                let first_time = !seen.iter().any(|(m, _)| &m.body()[..] == b"again");
                seen.extend(msgs.into_iter().map(|m| (m, (*ctx.mq).clone())));
                if again && first_time {
                    ConcurrentResult::RetryLater
                } else {
                    ConcurrentResult::Success
                }
            }
        })
        .build()
        .await
        .unwrap();
    producer.send(msg("T", "again", "x")).await.unwrap();
    wait_until(
        "both messages, one of them twice",
        Duration::from_secs(120),
        || seen.lock().unwrap().len() == 3,
    )
    .await;

    let seen = seen.lock().unwrap().clone();
    let redelivered = seen
        .iter()
        .filter(|(m, _)| &m.body()[..] == b"again")
        .nth(1)
        .unwrap();
    assert_eq!(redelivered.0.reconsume_times, 1);
    // The redelivery comes from a queue of the retry topic.
    assert_eq!(
        topics(seen.iter().map(|(_, mq)| mq)),
        ["%RETRY%cg".to_owned(), "T".to_owned()].into()
    );
    for (m, _) in &seen {
        assert_eq!(m.topic(), "T", "{:?}", m.body());
    }
    assert_eq!(
        topics(&consumer.assigned()),
        ["%RETRY%cg".to_owned(), "T".to_owned()].into()
    );
    let fetched = consumer.fetch_subscribe_queues("T").await.unwrap();
    assert_eq!(topics(&fetched), ["T".to_owned()].into());
    // The consumer's own admin works in its namespace too: its group's lag,
    // by the queues' names the application uses.
    assert_eq!(consumer.instance().client_id(), consumer.client_id());
    let stats = consumer
        .admin()
        .consume_stats("cg", Some("T"))
        .await
        .unwrap();
    assert_eq!(topics(stats.offset_table.keys()), ["T".to_owned()].into());
    let stored: i64 = stats.offset_table.values().map(|q| q.broker_offset).sum();
    assert_eq!(stored, 2);
    assert!(
        topics(consumer.committed_offsets().keys()).contains("T"),
        "{:?}",
        consumer.committed_offsets()
    );
    let group = (cluster.broker(0).groups().consumers.into_iter())
        .find(|g| g.group == "tenant1%cg")
        .expect("the group is registered in the namespace");
    let subscribed: BTreeSet<String> = group
        .subscriptions
        .iter()
        .map(|s| s.topic.clone())
        .collect();
    assert_eq!(
        subscribed,
        ["%RETRY%tenant1%cg".to_owned(), WIRE_TOPIC.to_owned()].into()
    );
    let report = consumer.shutdown().await;
    assert!(
        topics(report.offsets_committed.keys()).contains("T"),
        "{:?}",
        report.offsets_committed
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_without_the_namespace_sees_the_full_names() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "pg").await;
    producer.send(msg("T", "m", "x")).await.unwrap();
    let plain = PullConsumer::builder("plain", config(&cluster, &unique("plain")))
        .subscribe(WIRE_TOPIC, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let got = plain.poll(Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic(), WIRE_TOPIC);
    plain.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_pull_consumer_takes_and_gives_queues_without_the_namespace() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "pg").await;
    let broker = cluster.broker(0).name().to_owned();
    let queue = MessageQueue::new("T", &broker, 0);
    for i in 0..3 {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &queue)
            .await
            .unwrap();
    }
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("ns-pull")))
        .namespace(NS)
        .assign([queue.clone()])
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.assignment(), [queue.clone()].into());
    let fetched = consumer.fetch_message_queues("T").await.unwrap();
    assert_eq!(topics(&fetched), ["T".to_owned()].into());
    assert_eq!(fetched.len(), 4);
    assert_eq!(producer.fetch_publish_queues("T").await.unwrap(), fetched);
    assert_eq!(consumer.admin().max_offset(&queue).await.unwrap(), 3);
    consumer.seek(&queue, 1).await.unwrap();
    let got = consumer.poll(Duration::from_secs(30)).await.unwrap();
    let bodies: Vec<&[u8]> = got.iter().map(|m| &m.body()[..]).collect();
    assert_eq!(bodies, [b"m1", b"m2"]);
    assert!(got.iter().all(|m| m.topic() == "T"));
    consumer.commit_sync().await.unwrap();
    assert_eq!(consumer.committed(&queue).await.unwrap(), Some(3));
    assert_eq!(consumer.committed_offsets().get(&queue), Some(&3));
    let wire_queue = MessageQueue::new(WIRE_TOPIC, &broker, 0);
    assert_eq!(
        cluster
            .broker(0)
            .committed_offset("tenant1%lg", &wire_queue),
        Some(3)
    );
    let other = MessageQueue::new("T", &broker, 1);
    let error = consumer.seek(&other, 0).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::NotAssigned(mq) if *mq == other),
        "{error}"
    );
    let report = consumer.shutdown().await;
    assert_eq!(report.offsets_committed.get(&queue), Some(&3));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_selector_is_shown_the_queues_and_the_message_without_the_namespace() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "pg").await;
    let shown = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&shown);
    let selector = move |queues: &[MessageQueue], msg: &Message| {
        let mut shown = record.lock().unwrap();
        shown.push(msg.topic.clone());
        shown.extend(queues.iter().map(|mq| mq.topic.clone()));
        queues.iter().position(|mq| mq.queue_id == 2)
    };
    let sent = producer
        .send_with_selector(msg("T", "m", "x"), &selector)
        .await
        .unwrap();
    assert_eq!(sent.message_queue.queue_id, 2);
    let shown = shown.lock().unwrap().clone();
    assert!(
        shown.len() > 1 && shown.iter().all(|topic| topic == "T"),
        "{shown:?}"
    );
    assert_eq!(cluster.broker(0).messages(WIRE_TOPIC, 2).len(), 1);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_queue_of_another_topic_is_refused_in_the_applications_names() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "pg").await;
    let queue = MessageQueue::new("T", cluster.broker(0).name(), 0);
    let error = producer
        .send_to_queue(msg("U", "m", "x"), &queue)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("message topic U differs from queue topic T"),
        "{error}"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_producers_admin_works_in_its_namespace() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "pg").await;
    let sent = producer.send(msg("T", "m", "x")).await.unwrap();
    let admin = producer.admin();
    let found = admin
        .query_message_by_uniq_key("T", &sent.msg_id)
        .await
        .unwrap()
        .expect("found in the namespace's topic");
    assert_eq!(found.topic(), "T");
    let viewed = admin.view_message(&sent.offset_msg_id).await.unwrap();
    assert_eq!(viewed.topic(), "T");
    assert_eq!(admin.max_offset(&sent.message_queue).await.unwrap(), 1);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Commits every transaction once it is checked; records what it saw.
#[derive(Default)]
struct Ledger {
    executed: Mutex<Vec<String>>,
    checked: Mutex<Vec<String>>,
}

#[async_trait]
impl TransactionListener for Ledger {
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        self.executed.lock().unwrap().push(msg.topic.clone());
        LocalTransactionState::Unknown
    }

    async fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        self.checked.lock().unwrap().push(msg.topic().to_owned());
        LocalTransactionState::CommitMessage
    }
}

#[tokio::test(start_paused = true)]
async fn transactions_show_the_topic_without_the_namespace() {
    let cluster = TestCluster::builder()
        .topic(WIRE_TOPIC)
        .transaction_check_interval(Duration::from_secs(5))
        .transaction_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let ledger = Arc::new(Ledger::default());
    let producer = Producer::builder()
        .client_config(config(&cluster, &unique("ns-tx")))
        .namespace(NS)
        .producer_group("txg")
        .build_transactional(Arc::clone(&ledger))
        .await
        .unwrap();
    let result = producer
        .send_in_transaction(msg("T", "m", "x"), &())
        .await
        .unwrap();
    assert_eq!(result.send_result.message_queue.topic, "T");
    wait_until("the check-back commits", Duration::from_secs(60), || {
        !stored(&cluster, WIRE_TOPIC).is_empty()
    })
    .await;
    assert_eq!(*ledger.executed.lock().unwrap(), ["T"]);
    assert_eq!(ledger.checked.lock().unwrap()[0], "T");
    let committed = stored(&cluster, WIRE_TOPIC).remove(0);
    assert_eq!(committed.property(property::PGROUP), Some("tenant1%txg"));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_goes_to_the_clusters_reply_topic_unprefixed() {
    let cluster = cluster().await;
    let requester = producer(&cluster, "req").await;
    let replier = producer(&cluster, "rep").await;
    let ping = Message::builder("T").body("ping").build().unwrap();
    let answer = async {
        wait_until("the request is stored", Duration::from_secs(5), || {
            !stored(&cluster, WIRE_TOPIC).is_empty()
        })
        .await;
        let request = stored(&cluster, WIRE_TOPIC).remove(0);
        let reply = create_reply_message(&request.message, "pong").unwrap();
        replier.send(reply).await.unwrap();
    };
    let (reply, ()) = tokio::join!(requester.request(ping, Duration::from_secs(10)), answer);
    assert_eq!(&reply.unwrap().body()[..], b"pong");
    assert_eq!(
        stored(&cluster, "DefaultCluster_REPLY_TOPIC").len(),
        1,
        "the reply is stored in the cluster's reply topic"
    );
    requester.shutdown().await;
    replier.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_namespace_that_cannot_prefix_is_refused() {
    let cluster = cluster().await;
    let error = Producer::builder()
        .client_config(config(&cluster, &unique("bad-ns")))
        .namespace("a%b")
        .producer_group("pg")
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("invalid namespace"), "{error}");
    cluster.shutdown().await;
}
