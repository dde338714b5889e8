//! What the client logs, checked by capturing it. The checks run one after
//! another in one test: tracing decides per call site, for the whole
//! process, whether anyone listens, and a test running alongside without a
//! subscriber could make a captured event vanish.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{
    Seen, config, msg, owned, producer, recording, unique, wait_assigned, wait_until,
};
use rocketmq_client::consumer::ConcurrentResult;
use rocketmq_client::{ClientInstance, PullConsumer, PushConsumer};
use rocketmq_testkit::TestCluster;

/// Log lines written to it, shared by its clones.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// A dispatcher writing here what `filter` lets through.
    fn dispatch(&self, filter: &str) -> tracing::Dispatch {
        let writer = self.clone();
        tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .finish(),
        )
    }
}

/// A runtime whose threads, all of them, log to `logs`.
fn runtime(logs: &tracing::Dispatch, multi_thread: bool) -> tokio::runtime::Runtime {
    let on_workers = logs.clone();
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    if multi_thread {
        builder.worker_threads(2);
    } else {
        builder.start_paused(true);
    }
    builder
        .enable_all()
        .on_thread_start(move || {
            // For the thread's life.
            std::mem::forget(tracing::dispatcher::set_default(&on_workers));
        })
        .build()
        .unwrap()
}

#[test]
fn the_logs_say_what_they_should() {
    a_second_client_of_the_same_id_is_told_which_settings_it_does_not_get();
    a_pull_tasks_log_context_does_not_grow_with_its_pulls();
    a_subscribing_consumer_starts_without_asking_before_its_heartbeat();
    a_topic_created_after_its_consumer_starts_is_taken_at_once();
    refused_pulls_are_reported_once_a_minute_per_queue();
    failed_queue_locks_are_reported_once_a_minute_per_queue();
    offsets_a_stopped_broker_refuses_are_reported_once_a_minute();
    a_failed_final_persist_is_a_warning();
}

fn a_second_client_of_the_same_id_is_told_which_settings_it_does_not_get() {
    let captured = Captured::default();
    let logs = captured.dispatch("warn");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, false).block_on(async {
        let cluster = TestCluster::builder().topic("T").build().await.unwrap();
        let first = ClientInstance::acquire(config(&cluster, "shared_id")).unwrap();
        let mut same = config(&cluster, "shared_id");
        let second = ClientInstance::acquire(same.clone()).unwrap();
        same.request_timeout = Duration::from_secs(10);
        let third = ClientInstance::acquire(same).unwrap();
        third.release().await;
        second.release().await;
        first.release().await;
        cluster.shutdown().await;
    });
    let logs = captured.text();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "only the differing one: {logs}");
    assert!(warnings[0].contains("request_timeout"), "{logs}");
    assert!(
        !warnings[0].contains("transport"),
        "two handles of one network: {logs}"
    );
}

fn a_pull_tasks_log_context_does_not_grow_with_its_pulls() {
    let captured = Captured::default();
    let logs = captured.dispatch("rocketmq_kernel::pull=debug");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, false).block_on(async {
        let cluster = TestCluster::builder().topic("T").build().await.unwrap();
        let producer = producer(&cluster).await;
        let seen = Seen::default();
        let consumer = recording(&cluster, &unique("span"), "cg", "T", &seen)
            .build()
            .await
            .unwrap();
        wait_assigned(&consumer, 4).await;
        for i in 0..40 {
            producer
                .send(msg("T", &format!("m{i}"), "x"))
                .await
                .unwrap();
        }
        wait_until("all consumed", Duration::from_secs(60), || seen.len() == 40).await;
        consumer.shutdown().await;
        producer.shutdown().await;
        cluster.shutdown().await;
    });
    let logs = captured.text();
    assert!(logs.contains("pulled"), "no pull was logged: {logs}");
    let grown = logs.lines().find(|line| line.matches("addr=").count() > 1);
    assert!(grown.is_none(), "{grown:?}");
}

/// Real time and loopback TCP on two worker threads, as an application
/// starts: the race this checks does not happen on the in-memory network.
fn a_subscribing_consumer_starts_without_asking_before_its_heartbeat() {
    let captured = Captured::default();
    let logs = captured.dispatch("warn");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, true).block_on(async {
        let cluster = TestCluster::builder().topic("T").start_tcp().await.unwrap();
        // The instance rebalances a consumer on registration and on its
        // topic's first route; a broker asked for the group's members before
        // the consumer's heartbeat answers with an error.
        for round in 0..5 {
            let mut tcp = rocketmq_client::ClientConfig::new(cluster.namesrv_addrs());
            tcp.instance_name = unique("start");
            let consumer = PullConsumer::builder("lg", tcp)
                .subscribe("T", "*")
                .build()
                .await
                .unwrap();
            assert_eq!(consumer.assignment().len(), 4, "round {round}");
            consumer.shutdown().await;
        }
        cluster.shutdown().await;
    });
    let logs = captured.text();
    assert!(!logs.contains("rebalance skipped"), "{logs}");
}

/// The topic appears after the consumer started: whichever lookup finds
/// its route rebalances every consumer of it, and a new broker that answers
/// the group's members before it had the heartbeat ("no consumer for this
/// group") is sent one and asked again, so no round skips the topic. Real
/// time and loopback TCP, as above.
fn a_topic_created_after_its_consumer_starts_is_taken_at_once() {
    let captured = Captured::default();
    let logs = captured.dispatch("warn");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, true).block_on(async {
        let cluster = TestCluster::builder()
            .auto_create_topics(false)
            .start_tcp()
            .await
            .unwrap();
        for round in 0..5 {
            let topic = format!("Late{round}");
            let mut tcp = rocketmq_client::ClientConfig::new(cluster.namesrv_addrs());
            tcp.instance_name = unique("late");
            tcp.poll_name_server_interval = Duration::from_millis(50);
            let pull = PullConsumer::builder("lg", tcp.clone())
                .subscribe(&topic, "*")
                .build()
                .await
                .unwrap();
            let push = PushConsumer::builder("pg", tcp)
                .subscribe(&topic, "*")
                .consume_concurrently(|_, _| async { ConcurrentResult::Success })
                .build()
                .await
                .unwrap();
            assert!(pull.assignment().is_empty(), "round {round}");
            cluster.create_topic(&topic, rocketmq_testkit::TopicConfig::new(4, 4));
            wait_until("the late topic's queues", Duration::from_secs(10), || {
                pull.assignment().len() == 4 && owned(&push).len() == 4
            })
            .await;
            push.shutdown().await;
            pull.shutdown().await;
        }
        cluster.shutdown().await;
    });
    // Until the topic exists, each round says it has no route (as Java's
    // "topic not exist" warning); once it does, no round may skip it.
    let logs = captured.text();
    assert!(!logs.contains("no consumer for this group"), "{logs}");
}

/// A broker refusing every pull (FLOW_CONTROL: retried every 20 ms; then
/// SYSTEM_BUSY: every second) for two minutes: each of 16 queues reports
/// the failure when it starts and then once a minute, naming the group and
/// the queue, and says when pulls are answered again. (A warning per failed
/// pull was 48,000 lines a minute under FLOW_CONTROL.)
fn refused_pulls_are_reported_once_a_minute_per_queue() {
    use rocketmq_model::{RequestCode, ResponseCode};
    use rocketmq_testkit::TopicConfig;

    let captured = Captured::default();
    let logs = captured.dispatch("info");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, false).block_on(async {
        let cluster = TestCluster::builder()
            .topic_with("T", TopicConfig::new(16, 16))
            .build()
            .await
            .unwrap();
        let seen = Seen::default();
        let consumer = recording(&cluster, &unique("refused"), "cg", "T", &seen)
            .build()
            .await
            .unwrap();
        wait_assigned(&consumer, 16).await;
        for code in [ResponseCode::FLOW_CONTROL, ResponseCode::SYSTEM_BUSY] {
            cluster.fail_requests(RequestCode::PULL_MESSAGE, code, usize::MAX);
            // The pulls the broker held when the fault began are answered
            // first (their suspend time ends, or a message wakes them).
            wait_until("the held pulls answered", Duration::from_secs(30), || {
                cluster.broker(0).held_pulls() == 0
            })
            .await;
            let from = captured.text().len();
            // The window whose lines are counted: two minutes of the fault,
            // by the pulls the broker refused: one per queue every 20 ms
            // after FLOW_CONTROL, every second after another refusal.
            let per_queue_in_two_minutes: u64 = match code {
                ResponseCode::FLOW_CONTROL => 6000,
                _ => 120,
            };
            let pulls = || {
                cluster
                    .broker(0)
                    .requests_received(RequestCode::PULL_MESSAGE)
            };
            let before = pulls();
            wait_until(
                "two minutes of refused pulls",
                Duration::from_secs(300),
                || pulls() - before >= 16 * per_queue_in_two_minutes,
            )
            .await;
            let logs = captured.text()[from..].to_owned();
            let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
            // A report at the start of the window's minute and one a minute
            // later, per queue: at most three in two minutes.
            assert!(
                warnings.len() <= 16 * 3,
                "{code:?}: {} warnings in two minutes: {:?}",
                warnings.len(),
                &warnings[..warnings.len().min(5)]
            );
            assert!(
                warnings
                    .iter()
                    .any(|l| l.contains("(still)") && l.contains("group=cg")),
                "{code:?}: the failure going on is reported: {warnings:?}"
            );
            assert!(
                warnings.iter().all(|l| l.contains("mq=")),
                "every warning names its queue: {warnings:?}"
            );
            cluster.clear_faults();
            // Answered when the broker's long poll (15 s) ends.
            wait_until("recovery reported", Duration::from_secs(60), || {
                captured.text()[from..]
                    .matches("pulls answered again")
                    .count()
                    >= 16
            })
            .await;
        }
        consumer.shutdown().await;
        cluster.shutdown().await;
    });
}

/// While an orderly consumer's lock requests fail, the rebalancer tries
/// again every 500 ms: the failure is reported once a minute per queue,
/// not every round, and the add that finally works says so.
fn failed_queue_locks_are_reported_once_a_minute_per_queue() {
    use rocketmq_client::consumer::{OrderlyContext, OrderlyResult};
    use rocketmq_model::{MessageExt, RequestCode, ResponseCode};

    let captured = Captured::default();
    let logs = captured.dispatch("info");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, false).block_on(async {
        let cluster = TestCluster::builder().topic("T").build().await.unwrap();
        cluster.fail_requests(
            RequestCode::LOCK_BATCH_MQ,
            ResponseCode::SYSTEM_ERROR,
            usize::MAX,
        );
        let consumer = PushConsumer::builder("cg", config(&cluster, &unique("locks")))
            .subscribe("T", "*")
            .consume_orderly(|_: Vec<MessageExt>, _: OrderlyContext| async {
                OrderlyResult::Success
            })
            .build()
            .await
            .unwrap();
        // The topic's four queues and the group's retry queue.
        const QUEUES: u64 = 5;
        let rounds = || {
            cluster
                .broker(0)
                .requests_received(RequestCode::LOCK_BATCH_MQ)
        };
        let before = rounds();
        // The window whose lines are counted: two minutes of rounds 500 ms
        // apart, a lock request per queue each.
        wait_until(
            "two minutes of lock rounds",
            Duration::from_secs(180),
            || rounds() - before >= QUEUES * 240,
        )
        .await;
        let logs = captured.text();
        let refused = rounds() - before;
        assert!(
            refused >= QUEUES * 200,
            "a round every 500 ms: {refused} lock requests"
        );
        let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
        // Per queue, a report at once and one a minute later (three at most
        // in two minutes), where every round used to warn.
        assert!(
            warnings.len() as u64 <= QUEUES * 3,
            "{} warnings in two minutes: {:?}",
            warnings.len(),
            &warnings[..warnings.len().min(5)]
        );
        assert!(
            warnings
                .iter()
                .any(|l| l.contains("lock request failed (still)") && l.contains("mq=")),
            "the failure going on is reported: {warnings:?}"
        );
        cluster.clear_faults();
        wait_assigned(&consumer, 4).await;
        assert_eq!(
            captured.text().matches("failed_attempts=").count() as u64,
            QUEUES,
            "each queue's add says after how many failures: {}",
            captured.text()
        );
        consumer.shutdown().await;
        cluster.shutdown().await;
    });
}

/// While a broker is down, every persistence round (5 s) fails for each of
/// its queues: that is one warning when it starts and one a minute while it
/// lasts, not one per queue (16 queues were 16 lines every 5 s; a thousand,
/// 12,000 a minute) nor one per round (12 a minute), and one line when
/// persisting works again.
fn offsets_a_stopped_broker_refuses_are_reported_once_a_minute() {
    use rocketmq_testkit::TopicConfig;

    let captured = Captured::default();
    let logs = captured.dispatch("info,rocketmq_kernel::offset::persist_log=debug");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, false).block_on(async {
        let cluster = TestCluster::builder()
            .topic_with("T", TopicConfig::new(16, 16))
            .build()
            .await
            .unwrap();
        let seen = Seen::default();
        let consumer = recording(&cluster, &unique("persist"), "cg", "T", &seen)
            .build()
            .await
            .unwrap();
        wait_assigned(&consumer, 16).await;
        let producer = producer(&cluster).await;
        for i in 0..64 {
            producer
                .send(msg("T", &format!("m{i}"), "x"))
                .await
                .unwrap();
        }
        wait_until("every message consumed", Duration::from_secs(30), || {
            seen.bodies().len() >= 64
        })
        .await;
        cluster.broker(0).stop().await;
        let from = captured.text().len();
        let failed_rounds = |text: &str, level: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.contains(level) && l.contains("persisting offsets failed"))
                .map(str::to_owned)
                .collect()
        };
        // Two minutes of rounds (every 5 s) with the broker down, each
        // logged at debug when it is not reported.
        wait_until("24 failed rounds", Duration::from_secs(300), || {
            let text = &captured.text()[from..];
            failed_rounds(text, "DEBUG").len() + failed_rounds(text, "WARN").len() >= 24
        })
        .await;
        let warnings = failed_rounds(&captured.text()[from..], "WARN");
        assert!(
            (2..=3).contains(&warnings.len()),
            "{} warnings in 24 failed rounds: {:?}",
            warnings.len(),
            &warnings[..warnings.len().min(5)]
        );
        assert!(
            warnings.iter().all(|l| l.contains("group=")),
            "every warning names its group: {warnings:?}"
        );
        assert!(
            warnings[1].contains("failed_rounds_since_last_report=12"),
            "a minute later, with a count: {warnings:?}"
        );
        cluster.broker(0).restart().await.unwrap();
        wait_until("persisting works again", Duration::from_secs(120), || {
            captured.text()[from..].contains("offsets persisted again")
        })
        .await;
        consumer.shutdown().await;
        producer.shutdown().await;
        cluster.shutdown().await;
    });
}

/// The offsets a pull consumer persists at shutdown, refused by the broker:
/// a warning, not only an error in a report the application may not read
/// (the store logs each queue at debug level).
fn a_failed_final_persist_is_a_warning() {
    use rocketmq_model::{RequestCode, ResponseCode};

    let captured = Captured::default();
    let logs = captured.dispatch("warn");
    let _main = tracing::dispatcher::set_default(&logs);
    runtime(&logs, false).block_on(async {
        let cluster = TestCluster::builder().topic("T").build().await.unwrap();
        let producer = producer(&cluster).await;
        for i in 0..8 {
            producer
                .send(msg("T", &format!("m{i}"), "x"))
                .await
                .unwrap();
        }
        let consumer = PullConsumer::builder("final", config(&cluster, &unique("final")))
            .subscribe("T", "*")
            .consume_from_where(rocketmq_client::consumer::ConsumeFromWhere::FirstOffset)
            .auto_commit(false)
            .build()
            .await
            .unwrap();
        let mut got = 0;
        while got < 8 {
            got += consumer.poll(Duration::from_secs(1)).await.unwrap().len();
        }
        consumer.commit();
        cluster.broker(0).fail_requests(
            RequestCode::UPDATE_CONSUMER_OFFSET,
            ResponseCode::SYSTEM_ERROR,
            1_000,
        );
        let from = captured.text().len();
        let report = consumer.shutdown().await;
        assert!(!report.errors.is_empty(), "{report:?}");
        let window = captured.text()[from..].to_owned();
        assert!(
            window
                .lines()
                .any(|l| l.contains("WARN") && l.contains("persisting offsets at shutdown")),
            "{window}"
        );
        cluster.broker(0).clear_faults();
        producer.shutdown().await;
        cluster.shutdown().await;
    });
}
