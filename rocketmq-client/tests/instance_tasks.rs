//! The instance's background tasks on paused time: heartbeats, rebalance,
//! offset persistence and route refresh, all stopped by the
//! last release.

#![allow(clippy::unwrap_used)]

mod instance_support;

use std::sync::Arc;
use std::time::Duration;

use instance_support::{FakeConsumer, config, eventually};
use rocketmq_client::ClientInstance;
use rocketmq_kernel::BrokerApi;
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_testkit::{TestCluster, TopicConfig};

/// Moves the paused clock on by `by`. Nothing waits in real time: the
/// runtime jumps from timer to timer, running every task woken on the way
/// until all are idle, so each periodic task due by then has run exactly as
/// often as its interval says.
async fn clock_moves(by: Duration) {
    tokio::time::sleep(by).await;
}

#[tokio::test(start_paused = true)]
async fn periodic_tasks_call_the_consumer_on_their_intervals() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let config = config(&cluster, "periodic");
    let lease = ClientInstance::acquire(config).unwrap();
    let consumer = Arc::new(FakeConsumer::new("cg", "T"));
    lease.register_consumer(consumer.clone()).unwrap();
    // On registration and on the first route of its topic.
    eventually(|| FakeConsumer::count(&consumer.rebalances) == 2).await;

    clock_moves(Duration::from_millis(20_500)).await;
    assert_eq!(FakeConsumer::count(&consumer.persists), 4, "every 5 s");
    assert_eq!(
        FakeConsumer::count(&consumer.rebalances),
        3,
        "then every 20 s"
    );
    clock_moves(Duration::from_secs(40)).await;
    // Timers at 40 s and 60 s, the broker's notification when the 30 s
    // heartbeat registered the group, and the rebalance that follows the
    // heartbeat sent when the first connection to the broker opened; the last
    // two are requested at the same moment and may coalesce into one.
    let rebalances = FakeConsumer::count(&consumer.rebalances);
    assert!((6..=7).contains(&rebalances), "{rebalances} rebalances");

    let persists = FakeConsumer::count(&consumer.persists);
    let handle = lease.instance();
    lease.release().await;
    assert!(handle.is_shut_down());
    clock_moves(Duration::from_secs(60)).await;
    assert_eq!(
        FakeConsumer::count(&consumer.persists),
        persists,
        "tasks stopped"
    );
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_consumer_is_heartbeated_to_every_broker_on_the_heartbeat_interval() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let lease = ClientInstance::acquire(config(&cluster, "consumer_heartbeat")).unwrap();
    lease
        .register_consumer(Arc::new(FakeConsumer::new("cg", "T")))
        .unwrap();
    // The route refresh asked for by the registration fills the table; the
    // next heartbeat (30 s) reaches both brokers.
    clock_moves(Duration::from_secs(31)).await;
    for broker in cluster.brokers() {
        let clients = broker.clients();
        let me = clients
            .iter()
            .find(|c| c.client_id == lease.client_id())
            .unwrap_or_else(|| panic!("{} got no heartbeat", broker.name()));
        assert_eq!(me.consumer_groups, ["cg"]);
        assert!(
            me.producer_groups
                .contains(&"CLIENT_INNER_PRODUCER".to_owned())
        );
    }
    lease.release().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_route_rebalances_its_consumers() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut config = config(&cluster, "route_change");
    config.rebalance_interval = Duration::from_secs(3600);
    let lease = ClientInstance::acquire(config).unwrap();
    let consumer = Arc::new(FakeConsumer::new("cg", "T"));
    let other = Arc::new(FakeConsumer::new("other", "U"));
    lease.register_consumer(consumer.clone()).unwrap();
    lease.register_consumer(other.clone()).unwrap();
    eventually(|| lease.routes().table().route("T").is_some()).await;
    // Joining the group makes the broker notify (and the client rebalance).
    lease.send_heartbeat().await;
    clock_moves(Duration::from_secs(1)).await;
    let (before, other_before) = (
        FakeConsumer::count(&consumer.rebalances),
        FakeConsumer::count(&other.rebalances),
    );
    clock_moves(Duration::from_secs(35)).await;
    assert_eq!(
        FakeConsumer::count(&consumer.rebalances),
        before,
        "route unchanged"
    );

    cluster.create_topic("T", TopicConfig::new(8, 8));
    clock_moves(Duration::from_secs(31)).await;
    assert_eq!(
        lease.routes().table().subscribe_queues("T").unwrap().len(),
        8
    );
    assert_eq!(FakeConsumer::count(&consumer.rebalances), before + 1);
    assert_eq!(FakeConsumer::count(&other.rebalances), other_before);
    lease.release().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_group_registers_once_per_instance() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let lease = ClientInstance::acquire(config(&cluster, "register_once")).unwrap();
    lease
        .register_consumer(Arc::new(FakeConsumer::new("cg", "T")))
        .unwrap();
    let error = lease
        .register_consumer(Arc::new(FakeConsumer::new("cg", "T")))
        .unwrap_err();
    assert!(error.to_string().contains("already registered"), "{error}");
    lease.unregister_consumer("cg");
    lease
        .register_consumer(Arc::new(FakeConsumer::new("cg", "T")))
        .unwrap();
    lease.release().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_zero_timeout_or_interval_is_refused_before_anything_starts() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut zero_timeout = config(&cluster, "zero_timeout");
    zero_timeout.request_timeout = Duration::ZERO;
    let mut zero_heartbeat = config(&cluster, "zero_heartbeat");
    zero_heartbeat.heartbeat_broker_interval = Duration::ZERO;
    for (config, field) in [
        (zero_timeout, "request_timeout"),
        (zero_heartbeat, "heartbeat_broker_interval"),
    ] {
        let error = ClientInstance::acquire(config).err().unwrap().to_string();
        assert!(error.contains(field), "{error}");
    }
    cluster.shutdown().await;
}

/// A new connection to a broker brings a heartbeat, and the consumers
/// rebalance only when the broker took it, as Java's `onChannelActive`: a
/// broker that refused it does not list this client among the group's
/// members, and a rebalance on that list would give up the client's queues.
#[tokio::test(start_paused = true)]
async fn a_refused_heartbeat_on_a_new_connection_does_not_rebalance() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut config = config(&cluster, "refused_heartbeat");
    config.rebalance_interval = Duration::from_secs(3600);
    config.heartbeat_broker_interval = Duration::from_secs(3600);
    let lease = ClientInstance::acquire(config).unwrap();
    let consumer = Arc::new(FakeConsumer::new("cg", "T"));
    lease.register_consumer(consumer.clone()).unwrap();
    eventually(|| lease.routes().table().route("T").is_some()).await;
    clock_moves(Duration::from_secs(1)).await;
    let broker = cluster.broker(0);
    let addr = broker.addr().to_owned();
    let rebalances = || FakeConsumer::count(&consumer.rebalances);
    let heartbeats = || broker.requests_received(RequestCode::HEART_BEAT);

    // The first connection opens with a request other than a heartbeat;
    // the broker refuses the heartbeat the connection brings.
    let before = rebalances();
    broker.fail_requests(RequestCode::HEART_BEAT, ResponseCode::SYSTEM_ERROR, 1);
    let _ = lease.broker_api().consumer_list(&addr, "cg").await;
    eventually(|| heartbeats() == 1).await;
    clock_moves(Duration::from_secs(5)).await;
    assert_eq!(
        rebalances(),
        before,
        "no rebalance after a refused heartbeat"
    );
    assert!(broker.clients().is_empty(), "the broker knows no client");

    // The next connection's heartbeat is taken: the consumers rebalance.
    broker.drop_connections().await;
    clock_moves(Duration::from_secs(1)).await;
    let _ = lease.broker_api().consumer_list(&addr, "cg").await;
    eventually(|| heartbeats() == 2).await;
    eventually(|| rebalances() > before).await;
    lease.release().await;
    cluster.shutdown().await;
}
