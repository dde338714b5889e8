//! Admin calls against the testkit: topics, offsets, message lookup.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use rocketmq_client::{ClientConfig, KeyQuery, Producer};
use rocketmq_model::header::CreateTopicRequestHeader;
use rocketmq_model::{Message, MessageQueue};
use rocketmq_testkit::TestCluster;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

async fn producer(cluster: &TestCluster, instance: &str) -> Producer {
    Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group("pg")
        .build()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn topics_are_created_on_a_broker_and_on_a_cluster() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster, "admin_topics").await;
    let admin = producer.admin();
    let addr = cluster.broker(1).addr().to_owned();
    admin
        .create_topic(&addr, CreateTopicRequestHeader::new("ONE", 3))
        .await
        .unwrap();
    assert_eq!(cluster.broker(1).topic("ONE").unwrap().write_queue_nums, 3);
    assert!(cluster.broker(0).topic("ONE").is_none());

    let created = admin
        .create_topic_in_cluster("DefaultCluster", CreateTopicRequestHeader::new("ALL", 2))
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    for broker in cluster.brokers() {
        assert_eq!(broker.topic("ALL").unwrap().read_queue_nums, 2);
    }
    assert!(
        admin
            .create_topic_in_cluster("NoSuchCluster", CreateTopicRequestHeader::new("X", 1))
            .await
            .is_err()
    );
    let sent = producer
        .send(Message::builder("ALL").body("x").build().unwrap())
        .await
        .unwrap();
    assert!(sent.is_ok());
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn offsets_and_lookups() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "admin_lookups").await;
    let mq = MessageQueue::new("T", "broker-a", 1);
    let before = SystemTime::now();
    let mut results = Vec::new();
    for i in 0..3 {
        let msg = Message::builder("T")
            .body(format!("m{i}"))
            .keys([format!("order-{i}"), "shared".to_owned()])
            .build()
            .unwrap();
        results.push(producer.send_to_queue(msg, &mq).await.unwrap());
    }
    let admin = producer.admin();
    assert_eq!(admin.max_offset(&mq).await.unwrap(), 3);
    assert_eq!(admin.min_offset(&mq).await.unwrap(), 0);
    let past = before.checked_sub(Duration::from_secs(3600)).unwrap();
    assert_eq!(admin.search_offset(&mq, past).await.unwrap(), 0);
    let earliest = admin.earliest_msg_store_time(&mq).await.unwrap().unwrap();
    // In whole milliseconds, as brokers store it.
    let stored_since = before.checked_sub(Duration::from_millis(1)).unwrap();
    assert!(
        earliest >= stored_since && earliest <= SystemTime::now(),
        "{earliest:?}"
    );
    let empty = MessageQueue::new("T", "broker-a", 2);
    assert_eq!(admin.earliest_msg_store_time(&empty).await.unwrap(), None);

    let viewed = admin.view_message(&results[1].offset_msg_id).await.unwrap();
    assert_eq!(&viewed.message.body[..], b"m1");
    assert_eq!(viewed.queue_offset, 1);

    let by_key = admin
        .query_message(&KeyQuery::by_key("T", "order-2"))
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(&by_key[0].message.body[..], b"m2");
    let shared = admin
        .query_message(&KeyQuery::by_key("T", "shared"))
        .await
        .unwrap();
    assert_eq!(shared.len(), 3);
    let none = admin
        .query_message(&KeyQuery::by_key("T", "order"))
        .await
        .unwrap();
    assert!(none.is_empty(), "a key must match exactly");

    let by_uniq = admin
        .query_message_by_uniq_key("T", &results[0].msg_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&by_uniq.message.body[..], b"m0");
    assert!(
        admin
            .query_message_by_uniq_key("T", "0A0000000000000000000000000000FF")
            .await
            .unwrap()
            .is_none()
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's createTopic tries each master five times and succeeds when one
/// took the topic; the first failure used to end the call, leaving later
/// masters without the topic.
#[tokio::test(start_paused = true)]
async fn a_cluster_topic_is_created_through_failures() {
    use rocketmq_model::{RequestCode, ResponseCode};
    let cluster = TestCluster::builder()
        .brokers(2)
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster, "admin_create_retry").await;
    let admin = producer.admin();
    let create = RequestCode::UPDATE_AND_CREATE_TOPIC;

    // Four failures in a row: retried, both masters take it.
    cluster.fail_requests(create, ResponseCode::SYSTEM_ERROR, 4);
    let created = admin
        .create_topic_in_cluster(
            "DefaultCluster",
            CreateTopicRequestHeader::new("RETRIED", 2),
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    for broker in cluster.brokers() {
        assert!(broker.topic("RETRIED").is_some());
    }

    // One master refuses every time: the other still takes it.
    cluster
        .broker(0)
        .fail_requests(create, ResponseCode::SYSTEM_ERROR, 100);
    let created = admin
        .create_topic_in_cluster("DefaultCluster", CreateTopicRequestHeader::new("HALF", 2))
        .await
        .unwrap();
    assert_eq!(created, [cluster.broker(1).addr().to_owned()]);
    assert!(cluster.broker(1).topic("HALF").is_some());

    // Every master refuses: the error is the answer.
    cluster
        .broker(1)
        .fail_requests(create, ResponseCode::SYSTEM_ERROR, 100);
    let refused = admin
        .create_topic_in_cluster("DefaultCluster", CreateTopicRequestHeader::new("NONE", 2))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java gives QUERY_MESSAGE three times the client API timeout (9 s,
/// `MQAdminImpl.queryMessage`: `timeoutMillis * 3`); a broker answering in
/// 5 s is found there.
#[tokio::test(start_paused = true)]
async fn a_query_answered_in_five_seconds_is_found() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "admin_slow_query").await;
    let msg = Message::builder("T")
        .body("m")
        .keys(["order-1".to_owned()])
        .build()
        .unwrap();
    producer.send(msg).await.unwrap();
    cluster.delay_responses(
        rocketmq_model::RequestCode::QUERY_MESSAGE,
        Duration::from_secs(5),
    );
    let found = producer
        .admin()
        .query_message(&KeyQuery::by_key("T", "order-1"))
        .await;
    producer.shutdown().await;
    cluster.shutdown().await;
    assert_eq!(found.unwrap().len(), 1);
}

/// Java checks a topic to create before asking any broker: its permission
/// (`MQClientAPIImpl.createTopic`, `Validators.checkTopicConfig`), and for
/// `MQAdminImpl.createTopic` its name and that it is no system topic. A
/// broker stores any permission it is given, and a refused name was asked
/// of every master five times.
#[tokio::test(start_paused = true)]
async fn a_bad_topic_or_permission_is_refused_before_any_request() {
    use rocketmq_client::ClientError;
    use rocketmq_model::RequestCode;
    let cluster = TestCluster::builder()
        .brokers(2)
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster, "admin_create_checks").await;
    let admin = producer.admin();
    let addr = cluster.broker(0).addr().to_owned();
    for perm in [8, 14, -1] {
        let header = CreateTopicRequestHeader {
            perm,
            ..CreateTopicRequestHeader::new("BAD_PERM", 1)
        };
        let refused = admin.create_topic(&addr, header.clone()).await;
        assert!(
            matches!(refused, Err(ClientError::Config(_))),
            "{refused:?}"
        );
        let refused = admin
            .create_topic_in_cluster("DefaultCluster", header)
            .await;
        assert!(
            matches!(refused, Err(ClientError::Config(_))),
            "{refused:?}"
        );
    }
    for topic in ["rmq_sys_MINE", "SCHEDULE_TOPIC_XXXX", "with space", ""] {
        let refused = admin
            .create_topic_in_cluster("DefaultCluster", CreateTopicRequestHeader::new(topic, 1))
            .await;
        assert!(refused.is_err(), "{topic}: {refused:?}");
    }
    for broker in cluster.brokers() {
        assert_eq!(
            broker.requests_received(RequestCode::UPDATE_AND_CREATE_TOPIC),
            0
        );
        assert!(broker.topic("BAD_PERM").is_none());
    }
    // Every valid permission, read-only and write-only included, is sent.
    for perm in 0..8 {
        let header = CreateTopicRequestHeader {
            perm,
            ..CreateTopicRequestHeader::new(format!("PERM_{perm}"), 1)
        };
        admin.create_topic(&addr, header).await.unwrap();
        assert_eq!(
            cluster
                .broker(0)
                .topic(&format!("PERM_{perm}"))
                .unwrap()
                .perm,
            perm
        );
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's `searchOffset(mq, timestamp, boundaryType)`: past the last
/// message, the lower boundary is the max offset and the upper one the last
/// message; before the first, both are 0.
#[tokio::test(start_paused = true)]
async fn an_offset_is_searched_at_either_boundary() {
    use rocketmq_model::header::BoundaryType;
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "admin_boundary").await;
    let mq = MessageQueue::new("T", "broker-a", 0);
    let before = SystemTime::now().checked_sub(Duration::from_secs(3600));
    for i in 0..3 {
        let msg = Message::builder("T").body(format!("m{i}")).build().unwrap();
        producer.send_to_queue(msg, &mq).await.unwrap();
    }
    let admin = producer.admin();
    let later = SystemTime::now() + Duration::from_secs(3600);
    let search = |time, boundary| admin.search_offset_with_boundary(&mq, time, boundary);
    assert_eq!(search(later, BoundaryType::Lower).await.unwrap(), 3);
    assert_eq!(search(later, BoundaryType::Upper).await.unwrap(), 2);
    assert_eq!(admin.search_offset(&mq, later).await.unwrap(), 3);
    let before = before.unwrap();
    assert_eq!(search(before, BoundaryType::Lower).await.unwrap(), 0);
    assert_eq!(search(before, BoundaryType::Upper).await.unwrap(), 0);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's producer and consumer `viewMessage(topic, msgId)` take either id
/// a send answers: the offset message id, else the unique key.
#[tokio::test(start_paused = true)]
async fn a_message_is_viewed_by_either_id() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "admin_view_either").await;
    let msg = Message::builder("T").body("m").build().unwrap();
    let sent = producer.send(msg).await.unwrap();
    let admin = producer.admin();
    for id in [&sent.offset_msg_id, &sent.msg_id] {
        let viewed = admin.view_message_in("T", id).await.unwrap().unwrap();
        assert_eq!(&viewed.message.body[..], b"m", "{id}");
        assert_eq!(viewed.message.topic, "T");
        assert_eq!(viewed.message.uniq_key(), Some(sent.msg_id.as_str()));
    }
    let unknown = admin
        .view_message_in("T", "0A0000000000000000000000000000FF")
        .await
        .unwrap();
    assert!(unknown.is_none(), "{unknown:?}");
    assert!(
        admin
            .view_message_in("T", "not an id")
            .await
            .unwrap()
            .is_none()
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}
