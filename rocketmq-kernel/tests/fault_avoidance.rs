//! Latency fault avoidance over a route table, on paused time: slow brokers
//! are avoided for the time their latency earns, retries avoid the broker
//! that just failed, and when every broker is isolated sends still go out.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;
use std::time::Duration;

use rocketmq_kernel::fault::{FaultConfig, FaultStrategy, LatencyTable};
use rocketmq_kernel::{PublishInfo, RouteTable};
use rocketmq_model::route::perm;
use rocketmq_model::{BrokerData, QueueData, TopicRouteData};
use tokio::time::advance;

fn route(brokers: &[&str]) -> TopicRouteData {
    TopicRouteData {
        queue_datas: brokers
            .iter()
            .map(|name| QueueData {
                broker_name: (*name).into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: perm::READ | perm::WRITE,
                topic_sys_flag: 0,
            })
            .collect(),
        broker_datas: brokers
            .iter()
            .map(|name| BrokerData {
                broker_name: (*name).into(),
                broker_addrs: BTreeMap::from([(0, format!("{name}:10911"))]),
                ..BrokerData::default()
            })
            .collect(),
        ..TopicRouteData::default()
    }
}

fn publish(brokers: &[&str]) -> std::sync::Arc<PublishInfo> {
    let table = RouteTable::new();
    table.update("T", route(brokers));
    table.publish_info("T").unwrap()
}

/// How many of `n` first-attempt choices went to each broker.
fn choices(strategy: &FaultStrategy, info: &PublishInfo, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let mq = strategy.select_queue(info, None).unwrap();
        *counts.entry(mq.broker_name.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn a_slow_broker_is_avoided_for_the_derived_time_then_comes_back() {
    let strategy = FaultStrategy::new(FaultConfig::java_5x(true));
    let info = publish(&["broker-a", "broker-b", "broker-c"]);
    // 3.2 s on broker-b: Java 5.x isolates it for 6 s.
    strategy.record_latency("broker-b", Duration::from_millis(3_200));
    strategy.record_latency("broker-a", Duration::from_millis(20));

    // 64 choices: eight rounds over the eight queues of broker-a and -c.
    let during = choices(&strategy, &info, 64);
    assert_eq!(during.get("broker-b"), None, "{during:?}");
    assert_eq!(during["broker-a"], 32);
    assert_eq!(during["broker-c"], 32);

    advance(Duration::from_millis(5_999)).await;
    assert!(!choices(&strategy, &info, 60).contains_key("broker-b"));

    advance(Duration::from_millis(1)).await;
    let after = choices(&strategy, &info, 60);
    assert_eq!(after["broker-b"], 20, "back in the rotation: {after:?}");
}

#[tokio::test(start_paused = true)]
async fn java_4x_table_isolates_longer() {
    let strategy = FaultStrategy::new(FaultConfig::java_4x(true));
    let info = publish(&["broker-a", "broker-b"]);
    assert_eq!(
        LatencyTable::java_4x().isolation_for(Duration::from_millis(600)),
        Duration::from_secs(30)
    );
    strategy.record_latency("broker-a", Duration::from_millis(600));
    advance(Duration::from_secs(29)).await;
    assert!(!choices(&strategy, &info, 10).contains_key("broker-a"));
    advance(Duration::from_secs(1)).await;
    assert!(choices(&strategy, &info, 10).contains_key("broker-a"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_broker_is_isolated_and_a_retry_avoids_it() {
    let strategy = FaultStrategy::new(FaultConfig::java_5x(true));
    let info = publish(&["broker-a", "broker-b", "broker-c"]);
    // The first attempt went to broker-a and failed.
    strategy.record_failure("broker-a", Duration::from_millis(5));
    for _ in 0..30 {
        let retry = strategy.select_queue(&info, Some("broker-a")).unwrap();
        assert_ne!(retry.broker_name, "broker-a");
    }
    // Failure isolation: 10 s in Java 5.x.
    advance(Duration::from_millis(9_999)).await;
    assert!(!strategy.is_available("broker-a"));
    advance(Duration::from_millis(1)).await;
    assert!(strategy.is_available("broker-a"));
}

#[tokio::test(start_paused = true)]
async fn retry_avoids_the_last_broker_with_avoidance_off() {
    let strategy = FaultStrategy::new(FaultConfig::java_5x(false));
    let info = publish(&["broker-a", "broker-b"]);
    strategy.record_failure("broker-a", Duration::from_secs(5));
    for _ in 0..20 {
        let retry = strategy.select_queue(&info, Some("broker-a")).unwrap();
        assert_eq!(retry.broker_name, "broker-b");
    }
    // Off: nothing is isolated, first attempts use every broker.
    assert_eq!(choices(&strategy, &info, 8).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn every_broker_isolated_falls_back_to_round_robin() {
    let strategy = FaultStrategy::new(FaultConfig::java_5x(true));
    let info = publish(&["broker-a", "broker-b"]);
    strategy.record_failure("broker-a", Duration::from_millis(1));
    strategy.record_failure("broker-b", Duration::from_millis(1));
    let counts = choices(&strategy, &info, 80);
    assert_eq!(counts["broker-a"], 40, "{counts:?}");
    assert_eq!(counts["broker-b"], 40, "{counts:?}");
    // On a retry, the other (isolated) broker is still preferred to the
    // one that just failed.
    for _ in 0..10 {
        let retry = strategy.select_queue(&info, Some("broker-b")).unwrap();
        assert_eq!(retry.broker_name, "broker-a");
    }
}
