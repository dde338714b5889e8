//! Pop consumption (5.x POP_MESSAGE, ACK_MESSAGE,
//! CHANGE_MESSAGE_INVISIBLETIME) against the fake broker, as a client makes
//! the calls, on paused tokio time.

#![allow(clippy::unwrap_used)]

mod common;
mod pop_support;

use std::time::Duration;

use common::*;
use pop_support::*;
use rocketmq_model::header::PopMessageRequestHeader;
use rocketmq_model::message::pop::{
    PopTopicKind, ReceiptHandle, parse_msg_offset_info, parse_start_offset_info,
};
use rocketmq_model::message::property;
use rocketmq_model::route::perm;
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::Call;
use rocketmq_remoting::calls::{PopMessage, PopStatus};
use rocketmq_testkit::{TestCluster, TopicConfig};

#[tokio::test(start_paused = true)]
async fn a_pop_answers_messages_once_with_their_offsets() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    for body in ["m0", "m1", "m2"] {
        client.send(ADDR, &message("T", body, "a"), 1).await;
    }
    let first = pop(&client, pop_header(1, 2, 0)).await;
    assert_eq!(first.response.status, PopStatus::Found);
    assert_eq!(bodies(&first.messages), ["m0", "m1"]);
    let header = first.response.header.clone().unwrap();
    assert_eq!(header.start_offset_info.as_deref(), Some("0 1 0"));
    assert_eq!(header.msg_offset_info.as_deref(), Some("0 1 0,1"));
    assert_eq!(header.rest_num, 1);
    assert_eq!(header.invisible_time, 30_000);
    assert!(header.pop_time > 0 && (0..8).contains(&header.revive_qid));

    let second = pop(&client, pop_header(1, 32, 0)).await;
    assert_eq!(
        bodies(&second.messages),
        ["m2"],
        "the first two are in flight"
    );
    let header2 = second.response.header.clone().unwrap();
    assert_eq!(header2.start_offset_info.as_deref(), Some("0 1 2"));
    assert_eq!(header2.revive_qid, (header.revive_qid + 1) % 8);
    assert_eq!(header2.rest_num, 0);

    let none = pop(&client, pop_header(1, 32, 0)).await;
    assert_eq!(none.response.status, PopStatus::NoNewMsg, "POLLING_TIMEOUT");
    let header3 = none.response.header.unwrap();
    assert_eq!(header3.msg_offset_info.unwrap_or_default(), "");
    // Java commits the pop offset once the checkpoint is stored: the
    // checkpoints, not the offset, keep what is in flight.
    assert_eq!(committed(&client, "T", 1).await, 3);
    let in_flight = cluster.broker(0).in_flight_pops(GROUP);
    let offsets: Vec<i64> = in_flight.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert_eq!(in_flight[0].visible_at_ms, header.pop_time + 30_000);
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_message_does_not_come_back() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "acked", "a"), 0).await;
    client.send(ADDR, &message("T", "dropped", "a"), 0).await;
    let popped = pop(&client, pop_header(0, 32, 0)).await;
    assert_eq!(popped.handles.len(), 2);
    client
        .call(ADDR, ack_call(&popped.handles[0]))
        .await
        .unwrap();
    // A second ack of the same pop is answered the same, and does nothing.
    client
        .call(ADDR, ack_call(&popped.handles[0]))
        .await
        .unwrap();
    let in_flight = cluster.broker(0).in_flight_pops(GROUP);
    assert_eq!(in_flight.len(), 1);
    assert_eq!(in_flight[0].queue_offset, 1);

    tokio::time::advance(INVISIBLE).await;
    revived(&cluster, 1).await;
    let retried = cluster.broker(0).messages(RETRY, 0);
    assert_eq!(bodies(&retried), ["dropped"], "only the unacknowledged one");
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_message_comes_back_from_the_retry_topic_once() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "again", "a"), 2).await;
    let first = pop(&client, pop_header(2, 32, 0)).await;
    let first_pop_time = first.response.header.unwrap().pop_time;
    tokio::time::advance(INVISIBLE - Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(cluster.broker(0).messages(RETRY, 0).is_empty(), "not yet");
    tokio::time::advance(Duration::from_millis(1)).await;
    revived(&cluster, 1).await;
    assert_eq!(
        cluster
            .broker(0)
            .topic(RETRY)
            .map(|c| (c.read_queue_nums, c.perm)),
        Some((1, perm::READ | perm::WRITE))
    );

    let again = pop(&client, pop_header(-1, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["again"]);
    let message = &again.messages[0];
    assert_eq!(message.message.topic, "T", "answered with its own topic");
    assert_eq!(message.reconsume_times, 1);
    assert_eq!(
        message.message.property(property::FIRST_POP_TIME),
        Some(first_pop_time.to_string().as_str())
    );
    assert_eq!(
        message.message.property(property::UNIQ_KEY),
        Some("UNIQ-again")
    );
    let handle = &again.handles[0];
    assert_eq!(handle.kind, PopTopicKind::RetryV1);
    assert_eq!((handle.queue_id, handle.queue_offset), (0, 0));
    let header = again.response.header.unwrap();
    assert_eq!(header.msg_offset_info.as_deref(), Some("1 0 0"));
    assert_eq!(handle.pop_time, header.pop_time);

    client.call(ADDR, ack_call(handle)).await.unwrap();
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
    tokio::time::advance(INVISIBLE * 2).await;
    let none = pop(&client, pop_header(-1, 32, 0)).await;
    assert_eq!(none.response.status, PopStatus::NoNewMsg);
    assert_eq!(
        cluster.broker(0).messages(RETRY, 0).len(),
        1,
        "not revived again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_revived_twice_counts_its_reconsumes() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "twice", "a"), 0).await;
    let first = pop(&client, pop_header(0, 32, 0)).await;
    let first_pop_time = first.response.header.unwrap().pop_time;
    tokio::time::advance(INVISIBLE).await;
    revived(&cluster, 1).await;
    let second = pop(&client, pop_header(0, 32, 0)).await;
    assert_eq!(second.handles[0].kind, PopTopicKind::RetryV1);
    tokio::time::advance(INVISIBLE).await;
    revived(&cluster, 2).await;
    let third = &cluster.broker(0).messages(RETRY, 0)[1];
    assert_eq!(third.reconsume_times, 2);
    assert_eq!(
        third.message.property(property::FIRST_POP_TIME),
        Some(first_pop_time.to_string().as_str()),
        "the first pop's time is kept"
    );
    assert_eq!(
        third.message.property(property::POP_CK),
        None,
        "the handle is added to the answer, not stored"
    );
}

#[tokio::test(start_paused = true)]
async fn changing_the_invisible_time_moves_the_deadline() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "renewed", "a"), 0).await;
    client.send(ADDR, &message("T", "extended", "a"), 0).await;
    let popped = pop(&client, pop_header(0, 32, 0)).await;
    let mut renewed = Vec::new();
    for handle in &popped.handles {
        let answer = client
            .call(ADDR, change_call(handle, Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(answer.invisible_time, 60_000);
        assert_eq!(
            answer.revive_qid, handle.revive_qid,
            "Java keeps the revive queue"
        );
        renewed.push(handle.renewed(answer.pop_time, answer.invisible_time, answer.revive_qid));
    }
    client.call(ADDR, ack_call(&renewed[0])).await.unwrap();

    tokio::time::advance(INVISIBLE + Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert!(
        cluster.broker(0).messages(RETRY, 0).is_empty(),
        "not at the old deadline"
    );
    tokio::time::advance(Duration::from_secs(29)).await;
    revived(&cluster, 1).await;
    assert_eq!(bodies(&cluster.broker(0).messages(RETRY, 0)), ["extended"]);
}

#[tokio::test(start_paused = true)]
async fn a_pop_of_queue_minus_one_reads_every_queue() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    for queue in 0..4 {
        client
            .send(ADDR, &message("T", &format!("q{queue}"), "a"), queue)
            .await;
    }
    let popped = pop(&client, pop_header(-1, 32, 0)).await;
    let mut got = bodies(&popped.messages);
    got.sort();
    assert_eq!(got, ["q0", "q1", "q2", "q3"]);
    let header = popped.response.header.unwrap();
    let starts = parse_start_offset_info(header.start_offset_info.as_deref().unwrap()).unwrap();
    let offsets = parse_msg_offset_info(header.msg_offset_info.as_deref().unwrap()).unwrap();
    for queue in 0..4 {
        assert_eq!(starts[&(PopTopicKind::Normal, queue)], 0);
        assert_eq!(offsets[&(PopTopicKind::Normal, queue)], [0]);
    }
    // Each handle acknowledges its own message.
    for handle in &popped.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_tag_filter_skips_what_it_rejects() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    for (body, tag) in [("a0", "a"), ("b1", "b"), ("a2", "a"), ("b3", "b")] {
        client.send(ADDR, &message("T", body, tag), 0).await;
    }
    let mut header = pop_header(0, 32, 0);
    header.exp = Some("a || c".into());
    let popped = pop(&client, header.clone()).await;
    assert_eq!(bodies(&popped.messages), ["a0", "a2"]);
    let info = popped.response.header.unwrap();
    assert_eq!(info.msg_offset_info.as_deref(), Some("0 0 0,2"));
    assert_eq!(
        committed(&client, "T", 0).await,
        4,
        "rejected ones move the offset on"
    );
    let none = pop(&client, header).await;
    assert_eq!(none.response.status, PopStatus::NoNewMsg);
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_wakes_on_a_matching_send_and_times_out_at_its_poll_time() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    let mut header = pop_header(-1, 32, 20_000);
    header.exp = Some("a".into());
    let held = tokio::spawn({
        let client = client.clone();
        async move { pop(&client, header).await }
    });
    within(async {
        while broker.held_pops() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    client.send(ADDR, &message("T", "other", "b"), 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        broker.held_pops(),
        1,
        "a message its filter rejects wakes nothing"
    );
    client.send(ADDR, &message("T", "wanted", "a"), 3).await;
    let woken = within(held).await.unwrap();
    assert_eq!(bodies(&woken.messages), ["wanted"]);
    assert_eq!(broker.held_pops(), 0);

    let started = tokio::time::Instant::now();
    let timed_out = pop(&client, pop_header(0, 32, 5_000)).await;
    assert_eq!(timed_out.response.status, PopStatus::NoNewMsg);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(4_900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn pops_are_refused_as_java_refuses_them() {
    let cluster = TestCluster::builder()
        .topic("T")
        .topic_with("W", TopicConfig::new(4, 4).with_perm(perm::WRITE))
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let refused = |header: PopMessageRequestHeader| {
        let client = client.clone();
        async move { refusal(client.call(ADDR, PopMessage(header)).await) }
    };
    // Java answers POLLING_TIMEOUT, which a client takes for "no message".
    let mut late = pop_header(0, 32, 1_000);
    late.born_time = now_ms() - 10_000;
    let command = PopMessage(late).into_command().unwrap();
    let answer = (client.remoting)
        .invoke(ADDR, command, CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(answer.code, ResponseCode::POLLING_TIMEOUT.0);
    let remark = answer.remark.unwrap_or_default();
    assert!(
        remark.ends_with("pop message is timeout too much"),
        "{remark}"
    );

    let (code, remark) = refused(pop_header(0, 33, 0)).await;
    assert_eq!(code, ResponseCode::INVALID_PARAMETER);
    assert!(
        remark.ends_with("pop message's num is greater than 32"),
        "{remark}"
    );

    let mut missing = pop_header(0, 32, 0);
    missing.topic = "Nope".into();
    let (code, remark) = refused(missing).await;
    assert_eq!(code, ResponseCode::TOPIC_NOT_EXIST);
    assert!(
        remark.starts_with("topic[Nope] not exist, apply first please!"),
        "{remark}"
    );

    let mut unreadable = pop_header(0, 32, 0);
    unreadable.topic = "W".into();
    let (code, remark) = refused(unreadable).await;
    assert_eq!(code, ResponseCode::NO_PERMISSION);
    assert_eq!(remark, "the topic[W] peeking message is forbidden");

    let (code, remark) = refused(pop_header(4, 32, 0)).await;
    assert_eq!(code, ResponseCode::INVALID_PARAMETER);
    assert!(
        remark.starts_with("queueId[4] is illegal, topic:[T] topicConfig.readQueueNums:[4]"),
        "{remark}"
    );

    let mut blank = pop_header(0, 32, 0);
    blank.consumer_group = " ".into();
    let (code, remark) = refused(blank).await;
    assert_eq!(code, ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST);
    assert!(
        remark.starts_with("subscription group [ ] does not exist"),
        "{remark}"
    );

    for (kind, expression) in [("TAG", "||"), ("SQL92", "a = "), ("XPATH", "a")] {
        let mut bad = pop_header(0, 32, 0);
        bad.exp_type = Some(kind.into());
        bad.exp = Some(expression.into());
        let (code, remark) = refused(bad).await;
        assert_eq!(code, ResponseCode::SUBSCRIPTION_PARSE_FAILED, "{kind}");
        assert_eq!(remark, "parse the consumer's subscription failed");
    }
}

#[tokio::test(start_paused = true)]
async fn acks_and_changes_are_refused_as_java_refuses_them() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "m", "a"), 0).await;
    let popped = pop(&client, pop_header(0, 32, 0)).await;
    let handle = popped.handles[0].clone();

    let mut ack = ack_call(&handle);
    ack.0.topic = "Nope".into();
    assert_eq!(
        refusal(client.call(ADDR, ack).await).0,
        ResponseCode::TOPIC_NOT_EXIST
    );
    for queue_id in [-1, 4] {
        let mut ack = ack_call(&handle);
        ack.0.queue_id = queue_id;
        let (code, remark) = refusal(client.call(ADDR, ack).await);
        assert_eq!(code, ResponseCode::MESSAGE_ILLEGAL);
        assert!(
            remark.starts_with(&format!("queueId[{queue_id}] is illegal")),
            "{remark}"
        );
    }
    let mut ack = ack_call(&handle);
    ack.0.offset = 2;
    let (code, remark) = refusal(client.call(ADDR, ack).await);
    assert_eq!(code, ResponseCode::NO_MESSAGE);
    assert_eq!(remark, "offset is illegal, key:T@0, commit:2, store:0~1");
    let mut ack = ack_call(&handle);
    ack.0.extra_info = "0 1 2".into();
    let (code, remark) = refusal(client.call(ADDR, ack).await);
    assert_eq!(code, ResponseCode::SYSTEM_ERROR);
    assert!(remark.contains("getBrokerName fail"), "{remark}");
    // Java's ack accepts the max offset; a change does not, and says nothing.
    let mut at_max = ack_call(&handle);
    at_max.0.offset = 1;
    client.call(ADDR, at_max).await.unwrap();
    let mut change = change_call(&handle, INVISIBLE);
    change.0.offset = 1;
    let (code, remark) = refusal(client.call(ADDR, change).await);
    assert_eq!((code, remark.as_str()), (ResponseCode::NO_MESSAGE, ""));

    // An ack of a pop the broker never made is answered, and does nothing.
    let made_up = ReceiptHandle {
        pop_time: handle.pop_time + 1,
        ..handle.clone()
    };
    client.call(ADDR, ack_call(&made_up)).await.unwrap();
    assert_eq!(cluster.broker(0).in_flight_pops(GROUP).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_change_of_a_message_no_longer_in_flight_brings_it_back_as_javas_does() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "late", "a"), 0).await;
    let popped = pop(&client, pop_header(0, 32, 0)).await;
    client
        .call(ADDR, ack_call(&popped.handles[0]))
        .await
        .unwrap();
    client
        .call(
            ADDR,
            change_call(&popped.handles[0], Duration::from_secs(5)),
        )
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    revived(&cluster, 1).await;
    assert_eq!(bodies(&cluster.broker(0).messages(RETRY, 0)), ["late"]);
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_pop_survives_a_broker_restart() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "kept", "a"), 0).await;
    pop(&client, pop_header(0, 32, 0)).await;
    cluster.broker(0).restart().await.unwrap();
    tokio::time::advance(INVISIBLE).await;
    revived(&cluster, 1).await;
    let again = pop(&client, pop_header(0, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["kept"]);
}

#[tokio::test(start_paused = true)]
async fn faults_are_injected_on_pop_codes() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "m", "a"), 0).await;
    let broker = cluster.broker(0);
    broker.fail_requests(RequestCode::POP_MESSAGE, ResponseCode::SYSTEM_BUSY, 1);
    let busy = client.call(ADDR, PopMessage(pop_header(0, 32, 0))).await;
    assert_eq!(refusal(busy).0, ResponseCode::SYSTEM_BUSY);
    let popped = pop(&client, pop_header(0, 32, 0)).await;
    assert_eq!(
        bodies(&popped.messages),
        ["m"],
        "the refused pop popped nothing"
    );

    cluster.fail_requests(RequestCode::ACK_MESSAGE, ResponseCode::SYSTEM_ERROR, 1);
    broker.fail_requests(
        RequestCode::CHANGE_MESSAGE_INVISIBLETIME,
        ResponseCode::SYSTEM_BUSY,
        1,
    );
    let handle = &popped.handles[0];
    let failed = client.call(ADDR, ack_call(handle)).await;
    assert_eq!(refusal(failed).0, ResponseCode::SYSTEM_ERROR);
    let failed = client.call(ADDR, change_call(handle, INVISIBLE)).await;
    assert_eq!(refusal(failed).0, ResponseCode::SYSTEM_BUSY);
    assert_eq!(
        broker.in_flight_pops(GROUP).len(),
        1,
        "the failed ack did nothing"
    );
    client.call(ADDR, ack_call(handle)).await.unwrap();
    assert!(broker.in_flight_pops(GROUP).is_empty());
    assert_eq!(broker.requests_received(RequestCode::ACK_MESSAGE), 2);
}

#[tokio::test(start_paused = true)]
async fn a_sent_message_loses_a_receipt_handle_it_carried() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    // A popped message sent on as it was received, its handle still in it.
    let mut forwarded = message("T", "forwarded", "a");
    let stale = "0 1700000000000 30000 0 0 broker-a 1 0";
    forwarded
        .properties
        .insert(property::POP_CK, stale)
        .unwrap();
    client.send(ADDR, &forwarded, 1).await;
    let stored = cluster.broker(0).messages("T", 1);
    assert_eq!(stored[0].message.property(property::POP_CK), None);
    let popped = pop(&client, pop_header(1, 32, 0)).await;
    assert_eq!(bodies(&popped.messages), ["forwarded"]);
    assert_eq!(popped.messages[0].message.property(property::POP_CK), None);
    // So its handle is this pop's, which acknowledges it.
    let handle = &popped.handles[0];
    assert_eq!(handle.pop_time, popped.header().pop_time);
    client.call(ADDR, ack_call(handle)).await.unwrap();
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
}
