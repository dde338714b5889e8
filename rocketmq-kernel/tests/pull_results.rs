//! The pull loop's handling of each answer: FOUND puts, submits and
//! advances; the tag re-filter; NO_NEW_MSG / NO_MATCHED_MSG; OFFSET_ILLEGAL
//! drops the queue and corrects its offset; a broken answer delivers what
//! precedes the break and pulls again from it; a record that cannot be
//! decoded is skipped alone; errors back off; the commit flag;
//! the suggested broker; suspend and resume.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::sync::Arc;
use std::time::Duration;

use rebalance_support::*;
use rocketmq_kernel::consume::ConsumeService;
use rocketmq_kernel::offset::ReadOffsetType;
use rocketmq_kernel::pull::UNDECODABLE_RETRIES;
use rocketmq_kernel::{ConsumerOptions, OffsetStore};
use rocketmq_model::body::ExpressionType;
use rocketmq_model::message::sysflag::pull as pull_flag;
use rocketmq_model::{MessageQueue, ResponseCode, SubscriptionData, property};
use rocketmq_remoting::calls::PullStatus;

fn a0() -> MessageQueue {
    MessageQueue::new(TOPIC, "broker-a", 0)
}

fn msgs(from: i64, tags: &[&str]) -> Vec<rocketmq_model::MessageExt> {
    tags.iter()
        .zip(from..)
        .map(|(tag, offset)| message(&a0(), offset, tag, b"body"))
        .collect()
}

/// Client c1, alone in the group, subscribed to `TagA || TagB` of [`TOPIC`]
/// (one queue per broker), handing batches to `consume`.
async fn client_with(cluster: &Arc<Cluster>, consume: Arc<dyn ConsumeService>) -> Client {
    client_with_options(cluster, consume, options()).await
}

/// [`client_with`] with options of the test's own.
async fn client_with_options(
    cluster: &Arc<Cluster>,
    consume: Arc<dyn ConsumeService>,
    options: ConsumerOptions,
) -> Client {
    let mut route = route(1);
    route.broker_datas[0]
        .broker_addrs
        .insert(1, "a1:10911".into());
    let ns = FakeNameServer::with(&[(TOPIC, route)]);
    cluster.set_clients(&["c1"]);
    let subscription =
        SubscriptionData::from_expression(TOPIC, "TagA || TagB", ExpressionType::Tag).unwrap();
    let client = start_client(
        cluster,
        &ns,
        "c1",
        options,
        move |_| consume,
        &[subscription],
    );
    client.rebalancer.rebalance().await;
    client
}

#[tokio::test(start_paused = true)]
async fn found_puts_submits_refilters_by_tag_and_advances() {
    let cluster = Cluster::new();
    let found = |from: i64, tags: &[&str]| {
        let next = from + tags.len() as i64;
        Ok(answer(PullStatus::Found, next, 0, 100, &msgs(from, tags)))
    };
    cluster.script(&a0(), found(0, &["TagA", "TagB", "TagA"]));
    // TagC's hash passed the broker's filter; no tag at all neither matches.
    cluster.script(&a0(), found(3, &["TagA", "TagC", "TagB"]));
    cluster.script(&a0(), found(6, &["TagC"]));
    let stalled = Arc::new(StalledConsume::default());
    let c1 = client_with(&cluster, stalled.clone()).await;

    eventually("three pulls answered and a fourth sent", || {
        cluster.pulls_of(&a0()).len() >= 4
    })
    .await;
    let offsets: Vec<i64> = cluster
        .pulls_of(&a0())
        .iter()
        .map(|p| p.header.queue_offset)
        .collect();
    assert_eq!(
        offsets[..4],
        [0, 3, 6, 7],
        "each pull continues at nextBeginOffset"
    );

    let requests = stalled.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "the all-filtered answer submits nothing");
    let submitted: Vec<Vec<i64>> = requests
        .iter()
        .map(|r| r.msgs.iter().map(|m| m.queue_offset).collect())
        .collect();
    assert_eq!(submitted, [vec![0, 1, 2], vec![3, 5]]);
    assert!(requests.iter().all(|r| r.mq == a0()));
    assert!(requests[0].dispatch, "the first put dispatches");
    let pq = c1.rebalancer.process_queue(&a0()).unwrap();
    assert!(Arc::ptr_eq(&pq, &requests[0].pq));
    assert_eq!(
        pq.cached_count(),
        5,
        "the messages are in the process queue"
    );
    assert!(!pq.contains(4));
    let first = &requests[0].msgs[0];
    assert_eq!(first.property(property::MIN_OFFSET), Some("0"));
    assert_eq!(first.property(property::MAX_OFFSET), Some("100"));
}

#[tokio::test(start_paused = true)]
async fn transactional_messages_get_their_id_and_static_topics_their_delta() {
    let cluster = Cluster::new();
    let mut half = message(&a0(), 0, "TagA", b"t");
    half.message
        .properties
        .insert(property::TRAN_MSG, "true")
        .unwrap();
    half.message
        .properties
        .insert(property::UNIQ_KEY, "ID-1")
        .unwrap();
    let mut found = answer(
        PullStatus::Found,
        1,
        0,
        1,
        &[half, message(&a0(), 1, "TagB", b"u")],
    );
    found.header.offset_delta = Some(1000);
    cluster.script(&a0(), Ok(found));
    let stalled = Arc::new(StalledConsume::default());
    let _c1 = client_with(&cluster, stalled.clone()).await;
    eventually("a batch is submitted", || {
        !stalled.requests.lock().unwrap().is_empty()
    })
    .await;
    let request = stalled.requests.lock().unwrap()[0].clone();
    assert_eq!(
        request.msgs[0].property(property::TRANSACTION_ID),
        Some("ID-1")
    );
    assert_eq!(request.msgs[1].property(property::TRANSACTION_ID), None);
    let offsets: Vec<i64> = request.msgs.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [1000, 1001]);
}

#[tokio::test(start_paused = true)]
async fn nothing_new_continues_and_commits_the_offset_with_the_next_pull() {
    let cluster = Cluster::new();
    cluster.script(&a0(), Ok(answer(PullStatus::NoMatchedMsg, 20, 0, 20, &[])));
    cluster.script(&a0(), Ok(answer(PullStatus::NoNewMsg, 20, 0, 20, &[])));
    let c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    eventually("three pulls", || cluster.pulls_of(&a0()).len() >= 3).await;
    let pulls = cluster.pulls_of(&a0());
    // A new group: no offset known at the first pull, so no commit flag.
    assert_eq!(pulls[0].header.sys_flag, pull_flag::SUSPEND);
    assert_eq!(pulls[0].header.suspend_timeout_millis, 15_000);
    // Nothing in flight: the filtered-out offsets count as consumed.
    assert_eq!(
        c1.store.read(&a0(), ReadOffsetType::Memory).await.unwrap(),
        Some(20)
    );
    for pull in &pulls[1..3] {
        assert_eq!(pull.header.queue_offset, 20);
        assert_eq!(
            pull.header.sys_flag,
            pull_flag::SUSPEND | pull_flag::COMMIT_OFFSET
        );
        assert_eq!(pull.header.commit_offset, 20);
    }
    assert_eq!(
        cluster.offsets.lock().unwrap()[&a0()],
        20,
        "committed by the pull"
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_new_does_not_move_the_offset_past_messages_in_flight() {
    let cluster = Cluster::new();
    cluster.script(
        &a0(),
        Ok(answer(
            PullStatus::Found,
            2,
            0,
            2,
            &msgs(0, &["TagA", "TagA"]),
        )),
    );
    cluster.script(&a0(), Ok(answer(PullStatus::NoNewMsg, 2, 0, 2, &[])));
    let c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    eventually("three pulls", || cluster.pulls_of(&a0()).len() >= 3).await;
    assert_eq!(
        c1.store.read(&a0(), ReadOffsetType::Memory).await.unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn offset_illegal_drops_the_queue_then_corrects_its_offset_and_readds_it() {
    let cluster = Cluster::new();
    // A stored offset beyond the correction: the fix is forced, backwards.
    cluster.offsets.lock().unwrap().insert(a0(), 50);
    cluster.script(&a0(), Ok(answer(PullStatus::OffsetMoved, 42, 42, 90, &[])));
    let _c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    eventually("the queue is pulled again", || {
        cluster.pulls_of(&a0()).len() >= 2
    })
    .await;
    let pulls = cluster.pulls_of(&a0());
    assert_eq!(pulls[0].header.queue_offset, 50);
    assert_eq!(
        pulls[1].header.queue_offset, 42,
        "from the corrected offset"
    );
    assert_eq!(cluster.offsets.lock().unwrap()[&a0()], 42, "persisted");
    // At once, as Java 5 (4.x waited 10 s): within one rebalance trigger.
    let fixed_after = pulls[1].at - pulls[0].at;
    assert!(fixed_after < Duration::from_secs(1), "{fixed_after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_broken_answer_delivers_what_precedes_the_break_and_pulls_from_there() {
    let cluster = Cluster::new();
    // Records at 0 and 1, then one cut short: the broker said to go on at 5.
    let mut broken = answer(PullStatus::Found, 5, 0, 100, &msgs(0, &["TagA", "TagB"]));
    let mut body = bytes::BytesMut::from(&broken.body[..]);
    let cut = answer(PullStatus::Found, 5, 0, 100, &msgs(2, &["TagA"])).body;
    body.extend_from_slice(&cut[..cut.len() - 3]);
    broken.body = body.freeze();
    cluster.script(&a0(), Ok(broken));
    // Pulled again from 2, the broken record alone: nothing to deliver.
    let again = answer(PullStatus::Found, 5, 0, 100, &[]);
    let mut alone = bytes::BytesMut::new();
    alone.extend_from_slice(&cut[..cut.len() - 3]);
    cluster.script(
        &a0(),
        Ok(rocketmq_remoting::calls::PullResponse {
            body: alone.freeze(),
            ..again
        }),
    );
    let stalled = Arc::new(StalledConsume::default());
    let _c1 = client_with(&cluster, stalled.clone()).await;

    eventually("three pulls", || cluster.pulls_of(&a0()).len() >= 3).await;
    let pulls = cluster.pulls_of(&a0());
    let offsets: Vec<i64> = pulls.iter().map(|p| p.header.queue_offset).collect();
    assert_eq!(
        offsets[..3],
        [0, 2, 2],
        "the pull after a break starts at the broken record, and stays there"
    );
    let exception_delay = options().pull_time_delay_when_exception;
    assert!(
        pulls[2].at - pulls[1].at >= exception_delay,
        "then it backs off"
    );
    let requests = stalled.requests.lock().unwrap().clone();
    let submitted: Vec<Vec<i64>> = requests
        .iter()
        .map(|r| r.msgs.iter().map(|m| m.queue_offset).collect())
        .collect();
    assert_eq!(
        submitted,
        [vec![0, 1]],
        "the records before the break are delivered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_decoded_is_retried_isolated_then_skipped() {
    let cluster = Cluster::new();
    // The record at 0 is cut short; good ones follow it in the queue.
    let cut = answer(PullStatus::Found, 1, 0, 10, &msgs(0, &["TagA"])).body;
    let poisoned = |next_begin| rocketmq_remoting::calls::PullResponse {
        body: cut.slice(..cut.len() - 3),
        ..answer(PullStatus::Found, next_begin, 0, 10, &[])
    };
    for _ in 0..UNDECODABLE_RETRIES {
        cluster.script(&a0(), Ok(poisoned(10)));
    }
    // Pulled alone, the broker says to go on at 1.
    cluster.script(&a0(), Ok(poisoned(1)));
    let c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;

    let pulls_before_skip = UNDECODABLE_RETRIES as usize + 1;
    eventually("the pull after the skip", || {
        cluster.pulls_of(&a0()).len() > pulls_before_skip
    })
    .await;
    let pulls = cluster.pulls_of(&a0());
    let at: Vec<(i64, i32)> = pulls
        .iter()
        .map(|p| (p.header.queue_offset, p.header.max_msg_nums))
        .take(pulls_before_skip + 1)
        .collect();
    let batch = options().pull_batch_size;
    let mut expected = vec![(0, batch); UNDECODABLE_RETRIES as usize];
    expected.extend([(0, 1), (1, batch)]);
    assert_eq!(
        at, expected,
        "the same offset again, then the record alone, then past it only"
    );
    let exception_delay = options().pull_time_delay_when_exception;
    assert!(
        pulls[1].at - pulls[0].at >= exception_delay,
        "retries back off"
    );
    // Nothing was in flight: the skipped offset counts as consumed.
    assert_eq!(
        c1.store.read(&a0(), ReadOffsetType::Memory).await.unwrap(),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn errors_back_off_and_broker_flow_control_briefly() {
    let cluster = Cluster::new();
    cluster.script(&a0(), Err(refusal(ResponseCode::SYSTEM_ERROR)));
    cluster.script(&a0(), Err(refusal(ResponseCode::FLOW_CONTROL)));
    let _c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    eventually("three pulls", || cluster.pulls_of(&a0()).len() >= 3).await;
    let pulls = cluster.pulls_of(&a0());
    let exception_delay = options().pull_time_delay_when_exception;
    let first_gap = pulls[1].at - pulls[0].at;
    assert!(
        first_gap >= exception_delay && first_gap < exception_delay + Duration::from_millis(100),
        "{first_gap:?}"
    );
    let second_gap = pulls[2].at - pulls[1].at;
    assert!(
        second_gap >= Duration::from_millis(20) && second_gap < Duration::from_millis(100),
        "{second_gap:?}"
    );
    assert_eq!(
        pulls[2].header.queue_offset, 0,
        "a failed pull does not advance"
    );
}

/// A pull answered GO_AWAY was not processed, and its connection is
/// retired: it goes again at once on a new one, not after the exception
/// delay.
#[tokio::test(start_paused = true)]
async fn a_pull_answered_go_away_goes_again_at_once() {
    let cluster = Cluster::new();
    cluster.script(&a0(), Err(refusal(ResponseCode::GO_AWAY)));
    let _c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    eventually("two pulls", || cluster.pulls_of(&a0()).len() >= 2).await;
    let pulls = cluster.pulls_of(&a0());
    let gap = pulls[1].at - pulls[0].at;
    assert!(gap < Duration::from_millis(100), "{gap:?}");
    assert_eq!(pulls[1].header.queue_offset, pulls[0].header.queue_offset);
}

#[tokio::test(start_paused = true)]
async fn a_zero_exception_delay_still_waits_between_failed_pulls() {
    let cluster = Cluster::new();
    for _ in 0..5 {
        cluster.script(&a0(), Err(refusal(ResponseCode::SYSTEM_ERROR)));
    }
    let mut options = options();
    options.pull_time_delay_when_exception = Duration::ZERO;
    let _c1 = client_with_options(&cluster, Arc::new(StalledConsume::default()), options).await;
    eventually("six pulls", || cluster.pulls_of(&a0()).len() >= 6).await;
    let pulls = cluster.pulls_of(&a0());
    for pair in pulls[..6].windows(2) {
        assert!(
            pair[1].at > pair[0].at,
            "a failed pull is not followed by another at the same instant (a busy loop)"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_suggested_slave_is_pulled_without_the_commit_flag() {
    let cluster = Cluster::new();
    let mut found = answer(PullStatus::Found, 1, 0, 1, &msgs(0, &["TagA"]));
    found.header.suggest_which_broker_id = 1;
    cluster.script(&a0(), Ok(found));
    let c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    assert!(c1.store.update(&a0(), 1, true));
    eventually("two pulls", || cluster.pulls_of(&a0()).len() >= 2).await;
    let pulls = cluster.pulls_of(&a0());
    assert_eq!(pulls[0].addr, "a:10911");
    assert_eq!(pulls[1].addr, "a1:10911");
    assert_eq!(pulls[1].header.sys_flag & pull_flag::COMMIT_OFFSET, 0);
    assert_eq!(c1.routes.table().suggested_broker_id(&a0()), 1);
}

#[tokio::test(start_paused = true)]
async fn a_suspended_consumer_does_not_pull_until_resumed() {
    let cluster = Cluster::new();
    let c1 = client_with(&cluster, Arc::new(StalledConsume::default())).await;
    eventually("the first pulls", || {
        cluster.pulls.lock().unwrap().len() >= 2
    })
    .await;
    c1.rebalancer.suspend();
    assert!(c1.rebalancer.is_suspended());
    // The long polls in flight end after 15 s; nothing follows them.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let pulls = cluster.pulls.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(cluster.pulls.lock().unwrap().len(), pulls);
    c1.rebalancer.resume();
    eventually("pulls resume", || {
        cluster.pulls.lock().unwrap().len() > pulls
    })
    .await;
}
