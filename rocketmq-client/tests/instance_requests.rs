//! The client instance answers the requests brokers send (PROTOCOL.md §3.8,
//! §3.9) for a registered consumer, and refuses unknown groups.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::sync::Arc;

use instance_support::{FakeConsumer, config, eventually};
use rocketmq_client::{ClientInstance, Producer};
use rocketmq_kernel::{BrokerApi, CallMode};
use rocketmq_model::Message;
use rocketmq_model::body::MessageModel;
use rocketmq_model::body::{ConsumeResult, property_keys};
use rocketmq_model::header::UpdateConsumerOffsetRequestHeader;
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";

#[tokio::test(start_paused = true)]
async fn the_broker_reaches_a_registered_consumer() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let lease = ClientInstance::acquire(config(&cluster, "requests")).unwrap();
    let consumer = Arc::new(FakeConsumer::new("cg", "T"));
    lease.register_consumer(consumer.clone()).unwrap();
    lease.routes().route("T").await.unwrap();
    lease.send_heartbeat().await;
    let broker = cluster.broker(0);
    let groups = broker.groups();
    let group = groups.consumers.iter().find(|g| g.group == "cg").unwrap();
    assert_eq!(group.client_ids, [lease.client_id().to_owned()]);
    assert_eq!(group.message_model, MessageModel::Clustering);

    // GET_CONSUMER_RUNNING_INFO: the consumer's figures plus client properties.
    let info = broker
        .consumer_running_info("cg", lease.client_id(), false)
        .await
        .unwrap();
    let props = &info.properties;
    assert_eq!(
        props
            .get(property_keys::PROP_NAMESERVER_ADDR)
            .map(String::as_str),
        Some(format!("{};", cluster.namesrv_addr()).as_str())
    );
    assert!(props.contains_key(property_keys::PROP_CLIENT_VERSION));
    // The list in use, after a replacement too.
    let replaced = [cluster.namesrv_addr().to_owned(), "ns-b:9876".to_owned()];
    lease.update_namesrv_addrs(replaced.clone()).unwrap();
    let info = broker
        .consumer_running_info("cg", lease.client_id(), false)
        .await
        .unwrap();
    assert_eq!(
        info.properties
            .get(property_keys::PROP_NAMESERVER_ADDR)
            .map(String::as_str),
        Some(format!("{};ns-b:9876;", cluster.namesrv_addr()).as_str())
    );
    assert_eq!(
        props
            .get(property_keys::PROP_CONSUME_TYPE)
            .map(String::as_str),
        Some("CONSUME_PASSIVELY")
    );
    assert_eq!(info.mq_table[&consumer.queue()].commit_offset, 7);

    // GET_CONSUMER_STATUS_FROM_CLIENT: the consumer's offsets by client.
    let status = broker.consumer_status("cg", "T").await.unwrap();
    assert_eq!(status[lease.client_id()][&consumer.queue()], 5);

    // CONSUME_MESSAGE_DIRECTLY: a stored message, consumed by the listener.
    let producer = Producer::builder()
        .client_config(config(&cluster, "requests"))
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    let sent = producer
        .send(Message::builder("T").body("direct").build().unwrap())
        .await
        .unwrap();
    let result = broker
        .consume_message_directly("cg", lease.client_id(), &sent.offset_msg_id)
        .await
        .unwrap();
    assert_eq!(result.consume_result, Some(ConsumeResult::Success));
    assert_eq!(result.remark.as_deref(), Some("direct"));
    let consumed = consumer.consumed.lock().unwrap().clone();
    assert_eq!(consumed.len(), 1);
    assert_eq!(consumed[0].0.message.uniq_key(), Some(sent.msg_id.as_str()));
    producer.shutdown().await;

    // RESET_CONSUMER_CLIENT_OFFSET: offsets pushed to the consumer.
    for queue_id in 0..4 {
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id,
            commit_offset: 1,
            broker_name: None,
        };
        lease
            .broker_api()
            .update_consumer_offset(ADDR, header, CallMode::Sync)
            .await
            .unwrap();
    }
    let pushed = broker.reset_offset("cg", "T", 0, true).await.unwrap();
    eventually(|| !consumer.resets.lock().unwrap().is_empty()).await;
    let resets = consumer.resets.lock().unwrap().clone();
    assert_eq!(resets[0].0, "T");
    assert_eq!(resets[0].1.len(), pushed.len());
    for (mq, offset) in &pushed {
        assert_eq!(resets[0].1[mq], *offset);
    }
    lease.release().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_group_unknown_to_the_client_is_a_system_error() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let lease = ClientInstance::acquire(config(&cluster, "unknown_group")).unwrap();
    lease
        .register_consumer(Arc::new(FakeConsumer::new("gone", "T")))
        .unwrap();
    lease.routes().route("T").await.unwrap();
    lease.send_heartbeat().await;
    // The broker still lists the group; the client no longer serves it.
    lease.unregister_consumer("gone");
    let broker = cluster.broker(0);
    let error = broker
        .consumer_running_info("gone", lease.client_id(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("The Consumer Group <gone> not exist in this consumer"),
        "{error}"
    );
    lease.release().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_member_makes_the_broker_notify_and_the_consumer_rebalance() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut config_a = config(&cluster, "notify_a");
    config_a.rebalance_interval = std::time::Duration::from_secs(3600);
    let first = ClientInstance::acquire(config_a).unwrap();
    let consumer = Arc::new(FakeConsumer::new("cg", "T"));
    first.register_consumer(consumer.clone()).unwrap();
    first.routes().route("T").await.unwrap();
    first.send_heartbeat().await;
    eventually(|| FakeConsumer::count(&consumer.rebalances) >= 1).await;
    let before = FakeConsumer::count(&consumer.rebalances);

    let mut config_b = config(&cluster, "notify_b");
    config_b.rebalance_interval = std::time::Duration::from_secs(3600);
    let second = ClientInstance::acquire(config_b).unwrap();
    second
        .register_consumer(Arc::new(FakeConsumer::new("cg", "T")))
        .unwrap();
    second.routes().route("T").await.unwrap();
    second.send_heartbeat().await;
    eventually(|| FakeConsumer::count(&consumer.rebalances) > before).await;
    second.release().await;
    first.release().await;
    cluster.shutdown().await;
}
