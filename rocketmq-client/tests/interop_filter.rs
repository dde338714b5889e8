//! Interop against a real broker: tag and SQL92 subscriptions, filtered on
//! the broker (hash codes, property expressions) and re-checked by the
//! client.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use interop_support::{
    Seen, config, create_topic, holds_within, msg, namesrv, producer, secs, skip, unique,
    wait_assigned, wait_until,
};
use rocketmq_client::PushConsumer;
use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, MessageSelector,
};
use rocketmq_model::{Message, MessageExt};

fn recording_with(
    ns: &str,
    topic: &str,
    selector: MessageSelector,
    seen: &Seen,
) -> rocketmq_client::consumer::PushConsumerBuilder {
    let seen = seen.clone();
    PushConsumer::builder(unique("cg"), config(ns))
        .subscribe(topic, selector)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::Success
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_expressions_select_on_the_broker() {
    let Some(ns) = namesrv("tag_expressions_select_on_the_broker") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_tags");
    create_topic(&producer, &topic, 2).await;
    let (both, only_c) = (Seen::default(), Seen::default());
    let consumer_ab = recording_with(&ns, &topic, MessageSelector::tag("TagA || TagB"), &both)
        .build()
        .await
        .unwrap();
    let consumer_c = recording_with(&ns, &topic, MessageSelector::tag("TagC"), &only_c)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer_ab, 2).await;
    wait_assigned(&consumer_c, 2).await;
    for i in 0..30 {
        let tag = ["TagA", "TagB", "TagC"][i % 3];
        producer
            .send(msg(&topic, &format!("{tag}-{i}"), tag))
            .await
            .unwrap();
    }
    wait_until("20 TagA/TagB", secs(30), || both.len() >= 20).await;
    wait_until("10 TagC", secs(30), || only_c.len() >= 10).await;
    assert!(
        both.all()
            .iter()
            .all(|m| matches!(m.tags(), Some("TagA" | "TagB"))),
        "{:?}",
        both.bodies()
    );
    assert!(only_c.all().iter().all(|m| m.tags() == Some("TagC")));
    assert_eq!(both.distinct(), 20);
    assert_eq!(only_c.distinct(), 10);
    consumer_ab.shutdown().await;
    consumer_c.shutdown().await;
    producer.shutdown().await;
}

/// Java's broker (with `enablePropertyFilter=true`) delivers exactly the
/// messages whose properties match. rocketmq-broker 1.0 accepts the
/// subscription but matches no message on a property (only constant
/// expressions like `TRUE` match; docs/interop.md): when nothing at all
/// arrives and the queues were consumed past every message, the test
/// reports that deviation and skips; any other wrong result fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_selects_by_properties() {
    let Some(ns) = namesrv("sql92_selects_by_properties") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_sql");
    create_topic(&producer, &topic, 2).await;
    let seen = Seen::default();
    let selector = MessageSelector::sql92("a > 5 AND (color = 'red' OR TAGS = 'vip')");
    let built = recording_with(&ns, &topic, selector, &seen)
        .broker_suspend_max_time(secs(1))
        .build()
        .await;
    let consumer = match built {
        Ok(consumer) => consumer,
        Err(err) => panic!(
            "the broker refused an SQL92 subscription ({err}); it needs enablePropertyFilter=true, as scripts/real-cluster.sh sets"
        ),
    };
    wait_assigned(&consumer, 2).await;
    let mut expected = Vec::new();
    for a in 0..10 {
        for (color, tag) in [("red", "plain"), ("blue", "vip"), ("blue", "plain")] {
            let body = format!("{a}-{color}-{tag}");
            let message = Message::builder(topic.as_str())
                .body(body.clone())
                .tags(tag)
                .property("a", a.to_string())
                .property("color", color)
                .build()
                .unwrap();
            producer.send(message).await.unwrap();
            if a > 5 && (color == "red" || tag == "vip") {
                expected.push(body);
            }
        }
    }
    let all_filtered = || consumer.committed_offsets().values().sum::<i64>() == 30;
    let settled = || seen.len() >= expected.len() || (seen.len() == 0 && all_filtered());
    if !holds_within(secs(20), settled).await {
        // Nothing delivered and nothing filtered: the broker serves no
        // SQL92 pull at all (Java answers SYSTEM_ERROR when
        // enablePropertyFilter is off).
        assert_eq!(seen.len(), 0, "some but not all matching messages came");
        skip(
            "sql92_selects_by_properties",
            "the broker does not serve SQL92 pulls (enablePropertyFilter off? \
             scripts/real-cluster.sh turns it on)",
        );
        consumer.shutdown().await;
        producer.shutdown().await;
        return;
    }
    if seen.len() == 0 {
        skip(
            "sql92_selects_by_properties",
            "the broker accepted the SQL92 subscription but filtered out all 30 messages, \
             8 of which match (rocketmq-broker 1.0 deviation, see docs/interop.md)",
        );
    } else {
        let mut got = seen.bodies();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "exactly the matching messages, once");
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// CHECK_CLIENT_CONFIG at start: an SQL92 expression the broker cannot
/// compile fails the consumer's start (a Java broker answers SYSTEM_ERROR with
/// the parse error), and a valid one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sql92_expression_that_does_not_compile_fails_the_start() {
    let Some(ns) = namesrv("an_sql92_expression_that_does_not_compile_fails_the_start") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_sqlcheck");
    create_topic(&producer, &topic, 2).await;
    let seen = Seen::default();
    let broken = recording_with(&ns, &topic, MessageSelector::sql92("a >"), &seen)
        .build()
        .await;
    match broken {
        Err(rocketmq_client::ClientError::SubscriptionRefused { reason, .. }) => {
            println!("refused as expected: {reason}");
        }
        Err(other) => panic!("expected SubscriptionRefused, got {other}"),
        Ok(consumer) => {
            consumer.shutdown().await;
            skip(
                "an_sql92_expression_that_does_not_compile_fails_the_start",
                "the broker answered CHECK_CLIENT_CONFIG for `a >` with SUCCESS \
                 (rocketmq-broker 1.0 deviation, see docs/interop.md)",
            );
        }
    }
    let valid = recording_with(&ns, &topic, MessageSelector::sql92("a > 1"), &seen)
        .build()
        .await
        .unwrap();
    valid.shutdown().await;
    producer.shutdown().await;
}
