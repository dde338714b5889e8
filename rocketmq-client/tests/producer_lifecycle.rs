//! Producers and their client instance: heartbeats for producer-only clients,
//! unregistration at shutdown, shared instances, re-creation.

#![allow(clippy::unwrap_used)]

#[path = "waiting/mod.rs"]
#[allow(dead_code)]
mod waiting;

use std::time::Duration;

use rocketmq_client::{ClientConfig, ClientError, Producer};
use rocketmq_model::{Message, RequestCode};
use rocketmq_testkit::{Broker, TestCluster};
use tokio::time::Instant;
use waiting::wait_until;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

async fn producer(cluster: &TestCluster, instance: &str, group: &str) -> Producer {
    Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group(group)
        .build()
        .await
        .unwrap()
}

fn heartbeats(broker: &Broker) -> u64 {
    broker.requests_received(RequestCode::HEART_BEAT)
}

/// Waits until `broker` has received `count` heartbeats in all (two
/// minutes of paused time at most).
async fn heartbeats_reach(broker: &Broker, count: u64) {
    let what = format!("{} has {count} heartbeats", broker.name());
    wait_until(&what, Duration::from_secs(120), || {
        heartbeats(broker) >= count
    })
    .await;
}

fn producer_clients(broker: &Broker, group: &str) -> Vec<String> {
    broker
        .groups()
        .producers
        .into_iter()
        .find(|g| g.group == group)
        .map(|g| g.client_ids)
        .unwrap_or_default()
}

fn msg(body: &str) -> Message {
    Message::builder("T").body(body.to_owned()).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_producer_only_client_heartbeats_every_broker_and_unregisters() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster, "producer_only", "pg").await;
    let client_id = producer.instance().client_id().to_owned();
    producer.send(msg("route")).await.unwrap();
    for broker in cluster.brokers() {
        heartbeats_reach(broker, 1).await;
    }
    for broker in cluster.brokers() {
        assert_eq!(
            producer_clients(broker, "pg"),
            [client_id.as_str()],
            "{}",
            broker.name()
        );
        assert_eq!(
            producer_clients(broker, "CLIENT_INNER_PRODUCER"),
            [client_id.as_str()]
        );
        let clients = broker.clients();
        assert!(
            clients
                .iter()
                .any(|c| c.client_id == client_id && c.consumer_groups.is_empty())
        );
    }
    let instance = producer.instance().clone();
    producer.shutdown().await;
    assert!(instance.is_shut_down());
    for broker in cluster.brokers() {
        assert!(
            producer_clients(broker, "pg").is_empty(),
            "{}",
            broker.name()
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn producers_sharing_an_instance_shut_down_independently() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let first = producer(&cluster, "shared", "pg-1").await;
    let second = producer(&cluster, "shared", "pg-2").await;
    assert_eq!(first.instance().client_id(), second.instance().client_id());
    first.send(msg("a")).await.unwrap();
    second.send(msg("b")).await.unwrap();
    let broker = cluster.broker(0);
    heartbeats_reach(broker, 1).await;
    assert_eq!(producer_clients(broker, "pg-1").len(), 1);

    let instance = first.instance().clone();
    first.shutdown().await;
    assert!(
        !instance.is_shut_down(),
        "the second producer still uses it"
    );
    assert!(
        producer_clients(broker, "pg-1").is_empty(),
        "pg-1 unregistered"
    );
    assert_eq!(producer_clients(broker, "pg-2").len(), 1, "pg-2 kept");
    second.send(msg("c")).await.unwrap();
    heartbeats_reach(broker, heartbeats(broker) + 1).await;
    assert!(
        producer_clients(broker, "pg-1").is_empty(),
        "heartbeats no longer name pg-1"
    );

    second.shutdown().await;
    assert!(instance.is_shut_down());

    let again = producer(&cluster, "shared", "pg-1").await;
    assert!(!again.instance().is_shut_down());
    again.send(msg("d")).await.unwrap();
    again.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_group_per_instance() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let first = producer(&cluster, "same_group", "pg").await;
    let error = Producer::builder()
        .client_config(config(&cluster, "same_group"))
        .producer_group("pg")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::GroupAlreadyRegistered { .. }),
        "{error}"
    );
    first.send(msg("still fine")).await.unwrap();
    first.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_producer_frees_its_group() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let keeper = producer(&cluster, "dropped", "keeper").await;
    drop(producer(&cluster, "dropped", "pg").await);
    let again = producer(&cluster, "dropped", "pg").await;
    again.send(msg("x")).await.unwrap();
    again.shutdown().await;
    keeper.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn building_without_a_nameserver_fails() {
    let error = Producer::builder()
        .producer_group("pg")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Config(reason) if reason.contains("nameserver")),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_java_style_nameserver_list_in_the_config_is_split() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut config = config(&cluster, "java_list");
    // As read from a NAMESRV_ADDR variable: one string, `;`-separated.
    config.namesrv_addrs = vec![format!(" {} ;", cluster.namesrv_addrs().join(";"))];
    let producer = Producer::builder()
        .client_config(config)
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    let msg = Message::builder("T").body("x").build().unwrap();
    producer.send(msg).await.unwrap();
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Nameservers replaced while running (Java's `updateNameServerAddress`):
/// a producer started with one that does not exist finds its routes once
/// given the cluster's, and the instance reports the new list.
#[tokio::test(start_paused = true)]
async fn nameservers_replaced_while_running_are_used() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut config = config(&cluster, "moved_namesrv");
    config.namesrv_addrs = vec!["gone-namesrv:9876".into()];
    let producer = Producer::builder()
        .client_config(config)
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    let msg = || Message::builder("T").body("x").build().unwrap();
    producer.send(msg()).await.unwrap_err();
    let instance = producer.instance();
    let blank = instance.update_namesrv_addrs([" ; "]).unwrap_err();
    assert!(matches!(blank, ClientError::Config(_)), "{blank}");
    assert_eq!(instance.namesrv_addrs(), ["gone-namesrv:9876"]);
    instance
        .update_namesrv_addrs([cluster.namesrv_addrs().join(";")])
        .unwrap();
    assert_eq!(instance.namesrv_addrs(), cluster.namesrv_addrs());
    producer.send(msg()).await.unwrap();
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// `ClientConfig::check` accepts `Duration::MAX` for "no limit"; every call
/// must then work, the nameserver's too (it adds a little slack to its
/// timer, which overflowed and panicked).
#[tokio::test(start_paused = true)]
async fn a_request_timeout_of_duration_max_means_no_limit() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut unlimited = config(&cluster, "no_limit");
    unlimited.request_timeout = Duration::MAX;
    unlimited.check().unwrap();
    let producer = Producer::builder()
        .client_config(unlimited)
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    let sent = tokio::spawn(async move {
        let sent = producer.send(msg("x")).await;
        producer.shutdown().await;
        sent
    });
    let sent = tokio::time::timeout(Duration::from_secs(60), sent).await;
    assert!(matches!(sent, Ok(Ok(Ok(_)))), "{sent:?}");
    cluster.shutdown().await;
}

/// A heartbeat built before a group left, and handled by the broker after
/// the group's unregister (queued behind other work there), would register
/// the group again until the broker expires the client (120 s): a leaving
/// consumer's queues would wait that long for the group's other members,
/// transaction checks would go to a producer gone. The unregister waits for
/// the heartbeats in flight.
#[tokio::test(start_paused = true)]
async fn a_heartbeat_in_flight_does_not_bring_a_leaving_group_back() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let staying = producer(&cluster, "in_flight", "pg-stay").await;
    let leaving = producer(&cluster, "in_flight", "pg-leave").await;
    leaving.send(msg("route")).await.unwrap();
    let broker = cluster.broker(0);
    heartbeats_reach(broker, 1).await;
    assert_eq!(producer_clients(broker, "pg-leave").len(), 1);
    broker.delay_requests(RequestCode::HEART_BEAT, Duration::from_secs(1));
    let held = heartbeats(broker) + 1;
    let instance = staying.instance().clone();
    let heartbeat = tokio::spawn(async move { instance.send_heartbeat().await });
    // At the broker, naming pg-leave, held there.
    heartbeats_reach(broker, held).await;
    leaving.shutdown().await;
    heartbeat.await.unwrap();
    assert_eq!(
        producer_clients(broker, "pg-leave"),
        Vec::<String>::new(),
        "the group left for good"
    );
    assert_eq!(producer_clients(broker, "pg-stay").len(), 1);
    staying.shutdown().await;
    cluster.shutdown().await;
}

/// A heartbeat that a broker does not answer holds an unregister up for the
/// unregister's own timeout at most, not for the heartbeat's request timeout
/// (which an application may set long): a shutdown does not wait for it on
/// top of its own timeouts.
#[tokio::test(start_paused = true)]
async fn a_hung_heartbeat_holds_a_shutdown_up_no_longer_than_its_timeout() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut slow = config(&cluster, "hung_heartbeat");
    slow.request_timeout = Duration::from_secs(60);
    let producer = Producer::builder()
        .client_config(slow)
        .producer_group("pg-hung")
        .build()
        .await
        .unwrap();
    producer.send(msg("route")).await.unwrap();
    let broker = cluster.broker(0);
    heartbeats_reach(broker, 1).await;
    broker.delay_requests(RequestCode::HEART_BEAT, Duration::from_secs(600));
    let held = heartbeats(broker) + 1;
    let instance = producer.instance().clone();
    let heartbeat = tokio::spawn(async move { instance.send_heartbeat().await });
    heartbeats_reach(broker, held).await;
    let started = Instant::now();
    producer.shutdown().await;
    let took = started.elapsed();
    // The send timeout (3 s) for the gate, as much for the unregister.
    assert!(took <= Duration::from_secs(7), "shutdown took {took:?}");
    heartbeat.abort();
    cluster.shutdown().await;
}
