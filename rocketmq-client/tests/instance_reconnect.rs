//! A broker that restarts has forgotten the client's groups: the instance
//! heartbeats it as soon as a new connection to it opens (as Java 5.x does on
//! a channel connect), instead of leaving its pulls to fail until the next
//! 30 s heartbeat.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::time::Duration;

use consumer_support::{Seen, msg, producer, recording, unique, wait_assigned, wait_until};
use rocketmq_testkit::TestCluster;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_restarted_broker_is_heartbeated_when_the_client_reconnects() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("c"), "cg", "T", &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let broker = cluster.broker(0);
    let registered = || {
        broker
            .groups()
            .consumers
            .iter()
            .any(|g| g.group == "cg" && !g.client_ids.is_empty())
    };
    assert!(registered());

    broker.stop().await;
    broker.restart().await.unwrap();
    assert!(!registered(), "a restarted broker starts without groups");
    let restarted = Instant::now();
    // The pull tasks re-dial within their error back-off (3 s); the new
    // connection brings a heartbeat long before the 30 s timer would.
    wait_until(
        "the group registered again",
        Duration::from_secs(10),
        registered,
    )
    .await;
    assert!(restarted.elapsed() < Duration::from_secs(10));

    // And consumption goes on.
    let producer = producer(&cluster).await;
    producer.send(msg("T", "after restart", "x")).await.unwrap();
    wait_until("the message consumed", Duration::from_secs(10), || {
        seen.bodies().iter().any(|b| b == "after restart")
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}
