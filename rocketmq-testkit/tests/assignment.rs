//! Broker-side rebalance (5.x QUERY_ASSIGNMENT and SET_MESSAGE_REQUEST_MODE)
//! against the fake brokers, as a client and an administrator make the
//! calls, on paused tokio time. The expected allocations are Java's.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use common::*;
use rocketmq_model::body::{
    MessageModel, MessageQueueAssignment, MessageRequestMode, QueryAssignmentRequestBody,
    SetMessageRequestModeRequestBody,
};
use rocketmq_model::{MessageQueue, RequestCode, ResponseCode};
use rocketmq_remoting::calls::{Heartbeat, QueryAssignment, SetMessageRequestMode};
use rocketmq_remoting::{RemotingCommand, RemotingError};
use rocketmq_testkit::{TestCluster, TopicConfig};

const A: &str = "broker-a:10911";
const B: &str = "broker-b:10911";
const GROUP: &str = "cg";
/// The members, not in their sorted order.
const MEMBERS: [&str; 3] = ["10.0.0.3@c", "10.0.0.1@a", "10.0.0.2@b"];

/// Two brokers, topic T with 4 queues on each.
async fn cluster() -> TestCluster {
    TestCluster::builder()
        .brokers(2)
        .queues(4, 4)
        .topic("T")
        .build()
        .await
        .unwrap()
}

/// One client per member id (a broker knows a member per connection), each
/// registered with both brokers as a consumer of `topic`.
async fn members(cluster: &TestCluster, ids: &[&str], topic: &str) -> Vec<TestClient> {
    let mut clients = Vec::new();
    for id in ids {
        let client = TestClient::new(cluster);
        for addr in [A, B] {
            client
                .heartbeat(addr, consumer_heartbeat(id, GROUP, topic, "*"))
                .await;
        }
        clients.push(client);
    }
    clients
}

fn query_body(client_id: &str, topic: &str, strategy: &str) -> QueryAssignmentRequestBody {
    QueryAssignmentRequestBody {
        client_id: client_id.into(),
        consumer_group: GROUP.into(),
        message_model: MessageModel::Clustering,
        strategy_name: strategy.into(),
        topic: topic.into(),
    }
}

async fn query(
    client: &TestClient,
    addr: &str,
    body: QueryAssignmentRequestBody,
) -> Option<Vec<MessageQueueAssignment>> {
    client.call(addr, QueryAssignment(body)).await.unwrap()
}

/// The queues assigned to `client_id` for topic `topic` by `addr` with the
/// strategy, with their one mode; `None` when the broker could not tell.
async fn assigned(
    client: &TestClient,
    addr: &str,
    client_id: &str,
    topic: &str,
    strategy: &str,
) -> Option<(Vec<MessageQueue>, HashSet<MessageRequestMode>)> {
    let assignments = query(client, addr, query_body(client_id, topic, strategy)).await?;
    Some(split(assignments))
}

/// Sorted queues and the modes of the assignments.
fn split(
    assignments: Vec<MessageQueueAssignment>,
) -> (Vec<MessageQueue>, HashSet<MessageRequestMode>) {
    let modes = assignments.iter().map(|a| a.mode).collect();
    let mut queues: Vec<MessageQueue> = (assignments.into_iter())
        .map(|a| a.message_queue.unwrap())
        .collect();
    queues.sort();
    (queues, modes)
}

/// Queues of topic `topic` as `broker:id` pairs ("a0" is broker-a's queue 0).
fn qs(topic: &str, names: &[&str]) -> Vec<MessageQueue> {
    names
        .iter()
        .map(|name| {
            let (broker, id) = name.split_at(1);
            MessageQueue::new(topic, format!("broker-{broker}"), id.parse().unwrap())
        })
        .collect()
}

fn pull() -> HashSet<MessageRequestMode> {
    HashSet::from([MessageRequestMode::Pull])
}

fn pop() -> HashSet<MessageRequestMode> {
    HashSet::from([MessageRequestMode::Pop])
}

fn mode_body(
    topic: &str,
    group: &str,
    mode: MessageRequestMode,
    share: i32,
) -> SetMessageRequestModeRequestBody {
    SetMessageRequestModeRequestBody {
        consumer_group: group.into(),
        mode,
        pop_share_queue_num: share,
        topic: topic.into(),
    }
}

async fn set_mode(
    client: &TestClient,
    addr: &str,
    body: SetMessageRequestModeRequestBody,
) -> Result<(), RemotingError> {
    client.call(addr, SetMessageRequestMode(body)).await
}

/// The code and remark of a refused call.
fn refusal(result: Result<(), RemotingError>) -> (ResponseCode, String) {
    match result {
        Err(RemotingError::Response { code, remark, .. }) => (code, remark),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every member's sorted queues and modes, in the sorted order of ids.
async fn every_member(
    clients: &[TestClient],
    ids: &[&str],
    topic: &str,
    strategy: &str,
) -> Vec<(Vec<MessageQueue>, HashSet<MessageRequestMode>)> {
    let mut sorted: Vec<(&str, &TestClient)> = ids.iter().copied().zip(clients).collect();
    sorted.sort_by_key(|(id, _)| *id);
    let mut all = Vec::new();
    for (id, client) in sorted {
        all.push(assigned(client, A, id, topic, strategy).await.unwrap());
    }
    all
}

#[tokio::test(start_paused = true)]
async fn pull_assignments_share_every_queue_of_the_topic_averagely() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS, "T").await;
    let got = every_member(&clients, &MEMBERS, "T", "AVG").await;
    // Java's averagely allocation of the 8 sorted queues among 3 sorted ids.
    let expected = [
        qs("T", &["a0", "a1", "a2"]),
        qs("T", &["a3", "b0", "b1"]),
        qs("T", &["b2", "b3"]),
    ];
    for ((queues, modes), expected) in got.iter().zip(&expected) {
        assert_eq!(queues, expected);
        assert_eq!(*modes, pull());
    }
    let union: Vec<MessageQueue> = got.iter().flat_map(|(q, _)| q.clone()).collect();
    let distinct: BTreeSet<MessageQueue> = union.iter().cloned().collect();
    assert_eq!(union.len(), 8, "each queue once");
    assert_eq!(distinct.len(), 8);
    // The other broker knows the same members and the same queues.
    let from_b = assigned(&clients[0], B, "10.0.0.1@a", "T", "AVG").await;
    assert_eq!(from_b.unwrap().0, expected[0]);
}

#[tokio::test(start_paused = true)]
async fn by_circle_deals_the_queues_in_turn() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS, "T").await;
    let got = every_member(&clients, &MEMBERS, "T", "AVG_BY_CIRCLE").await;
    let queues: Vec<Vec<MessageQueue>> = got.into_iter().map(|(q, _)| q).collect();
    assert_eq!(
        queues,
        [
            qs("T", &["a0", "a3", "b2"]),
            qs("T", &["a1", "b0", "b3"]),
            qs("T", &["a2", "b1"]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_assignment_when_the_broker_cannot_tell() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS[..1], "T").await;
    let client = &clients[0];
    let id = MEMBERS[0];
    for strategy in ["CONSISTENT_HASH", "", "avg"] {
        assert_eq!(
            assigned(client, A, id, "T", strategy).await,
            None,
            "{strategy:?}"
        );
    }
    assert_eq!(assigned(client, A, id, "Unknown", "AVG").await, None);
    let mut lonely = query_body(id, "T", "AVG");
    lonely.consumer_group = "nobody".into();
    assert_eq!(
        query(client, A, lonely).await,
        None,
        "a group with no member"
    );
    // A client that is no member is told to let every queue go.
    let stranger = assigned(client, A, "10.9.9.9@x", "T", "AVG").await;
    assert_eq!(stranger, Some((Vec::new(), HashSet::new())));
    // Java's allocation refuses an empty client id: no assignment.
    assert_eq!(assigned(client, A, "", "T", "AVG").await, None);
}

#[tokio::test(start_paused = true)]
async fn broadcasting_gets_every_queue() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    let mut body = query_body("10.0.0.1@a", "T", "AVG");
    body.message_model = MessageModel::Broadcasting;
    body.consumer_group = "no-member-needed".into();
    let (queues, modes) = split(query(&client, A, body.clone()).await.unwrap());
    assert_eq!(
        queues,
        qs("T", &["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"])
    );
    assert_eq!(modes, pull());
    // In pop mode, Java still answers the queues themselves, marked POP.
    let pop_mode = mode_body("T", &body.consumer_group, MessageRequestMode::Pop, 0);
    set_mode(&client, A, pop_mode).await.unwrap();
    let (popped, modes) = split(query(&client, A, body.clone()).await.unwrap());
    assert_eq!((popped, modes), (queues, pop()));
    body.topic = "Unknown".into();
    assert_eq!(query(&client, A, body).await, None);
}

#[tokio::test(start_paused = true)]
async fn pop_mode_without_sharing_pops_every_queue_of_each_broker() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS, "T").await;
    let admin = TestClient::new(&cluster);
    set_mode(&admin, A, mode_body("T", GROUP, MessageRequestMode::Pop, 0))
        .await
        .unwrap();
    for (queues, modes) in every_member(&clients, &MEMBERS, "T", "AVG").await {
        assert_eq!(queues, qs("T", &["a-1", "b-1"]));
        assert_eq!(modes, pop());
    }
    // The mode is the broker's own: broker-b was not told.
    let from_b = assigned(&clients[1], B, "10.0.0.1@a", "T", "AVG").await;
    assert_eq!(from_b, Some((qs("T", &["a0", "a1", "a2"]), pull())));
    // Sharing with every other member (2 of 3) is the same as none.
    set_mode(&admin, A, mode_body("T", GROUP, MessageRequestMode::Pop, 2))
        .await
        .unwrap();
    let shared = assigned(&clients[0], A, MEMBERS[0], "T", "AVG").await;
    assert_eq!(shared, Some((qs("T", &["a-1", "b-1"]), pop())));
    // Back to pull.
    set_mode(
        &admin,
        A,
        mode_body("T", GROUP, MessageRequestMode::Pull, 0),
    )
    .await
    .unwrap();
    let pulled = assigned(&clients[1], A, "10.0.0.1@a", "T", "AVG").await;
    assert_eq!(pulled, Some((qs("T", &["a0", "a1", "a2"]), pull())));
}

#[tokio::test(start_paused = true)]
async fn pop_sharing_adds_the_next_members_queues() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS, "T").await;
    let admin = TestClient::new(&cluster);
    set_mode(&admin, A, mode_body("T", GROUP, MessageRequestMode::Pop, 1))
        .await
        .unwrap();
    let got = every_member(&clients, &MEMBERS, "T", "AVG").await;
    let expected = [
        qs("T", &["a0", "a1", "a2", "a3", "b0", "b1"]),
        qs("T", &["a3", "b0", "b1", "b2", "b3"]),
        qs("T", &["a0", "a1", "a2", "b2", "b3"]),
    ];
    for ((queues, modes), expected) in got.iter().zip(&expected) {
        assert_eq!(queues, expected);
        assert_eq!(*modes, pop());
    }
}

#[tokio::test(start_paused = true)]
async fn more_pop_members_than_queues_take_their_index_modulo() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic_with("S", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let ids = ["10.0.0.4@d", "10.0.0.2@b", "10.0.0.1@a", "10.0.0.3@c"];
    let clients = members(&cluster, &ids, "S").await;
    let admin = TestClient::new(&cluster);
    set_mode(&admin, A, mode_body("S", GROUP, MessageRequestMode::Pop, 1))
        .await
        .unwrap();
    let queues: Vec<Vec<MessageQueue>> = (every_member(&clients, &ids, "S", "AVG").await)
        .into_iter()
        .map(|(q, _)| q)
        .collect();
    let (a, b) = (qs("S", &["a0"]), qs("S", &["b0"]));
    assert_eq!(queues, [a.clone(), b.clone(), a, b]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_topic_is_always_pulled() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS, "T").await;
    let admin = TestClient::new(&cluster);
    let retry = format!("%RETRY%{GROUP}");
    let refused = set_mode(
        &admin,
        A,
        mode_body(&retry, GROUP, MessageRequestMode::Pop, 0),
    )
    .await;
    assert_eq!(
        refusal(refused),
        (
            ResponseCode::NO_PERMISSION,
            "retry topic is not allowed to set mode".to_owned()
        )
    );
    // Its queue on each broker (the heartbeats made them), pulled.
    let got = every_member(&clients, &MEMBERS, &retry, "AVG").await;
    let expected = [qs(&retry, &["a0"]), qs(&retry, &["b0"]), Vec::new()];
    for ((queues, modes), expected) in got.iter().zip(&expected) {
        assert_eq!(queues, expected);
        if !expected.is_empty() {
            assert_eq!(*modes, pull());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn set_mode_checks_in_javas_order() {
    let cluster = cluster().await;
    let admin = TestClient::new(&cluster);
    let pop = MessageRequestMode::Pop;
    // The retry prefix first, then the topic, then the group.
    let refused = set_mode(&admin, A, mode_body("%RETRY%Unknown", "a b", pop, 0)).await;
    assert_eq!(refusal(refused).0, ResponseCode::NO_PERMISSION);
    let refused = set_mode(&admin, A, mode_body("Unknown", "a b", pop, 0)).await;
    assert_eq!(
        refusal(refused),
        (
            ResponseCode::TOPIC_NOT_EXIST,
            "topic[Unknown] not exist".to_owned()
        )
    );
    // A group is created when first named, if Java accepts its name.
    let refused = set_mode(&admin, A, mode_body("T", "a b", pop, 0)).await;
    assert_eq!(
        refusal(refused),
        (
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            "subscription group does not exist".to_owned()
        )
    );
    set_mode(&admin, A, mode_body("T", "new_group", pop, 0))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_mode_survives_a_broker_restart() {
    let cluster = cluster().await;
    let admin = TestClient::new(&cluster);
    set_mode(&admin, A, mode_body("T", GROUP, MessageRequestMode::Pop, 0))
        .await
        .unwrap();
    cluster.broker(0).restart().await.unwrap();
    let client = TestClient::new(&cluster);
    let id = "10.0.0.1@a";
    let got = within(async {
        loop {
            // The registrations went with the restart: heartbeat again
            // (failing fast until the reconnect backoff ends).
            let heartbeat = consumer_heartbeat(id, GROUP, "T", "*");
            let registered = client.call(A, Heartbeat(heartbeat)).await;
            if registered.is_ok() {
                break assigned(&client, A, id, "T", "AVG").await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(got, Some((qs("T", &["a-1", "b-1"]), pop())));
}

#[tokio::test(start_paused = true)]
async fn bodies_that_do_not_decode_are_system_errors() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    let cases = [
        (
            RequestCode::QUERY_ASSIGNMENT,
            r#"{"messageModel":"NEITHER"}"#,
        ),
        (RequestCode::SET_MESSAGE_REQUEST_MODE, r#"{"mode":"PUSH"}"#),
    ];
    for (code, bad_value) in cases {
        for body in ["", "{\"topic\":", bad_value] {
            let request = RemotingCommand::request(code).with_body(body.to_owned());
            let answer = client
                .remoting
                .invoke(A, request, CALL_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(
                answer.code,
                ResponseCode::SYSTEM_ERROR.0,
                "{code:?} {body:?}"
            );
            assert!(answer.remark.is_some_and(|r| !r.is_empty()));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn injected_failures_apply_to_both_codes() {
    let cluster = cluster().await;
    let clients = members(&cluster, &MEMBERS[..1], "T").await;
    let client = &clients[0];
    let broker = cluster.broker(0);
    broker.fail_requests(RequestCode::QUERY_ASSIGNMENT, ResponseCode::SYSTEM_BUSY, 1);
    broker.fail_requests(
        RequestCode::SET_MESSAGE_REQUEST_MODE,
        ResponseCode::SYSTEM_BUSY,
        1,
    );
    let body = query_body(MEMBERS[0], "T", "AVG");
    let busy = client.call(A, QueryAssignment(body.clone())).await;
    assert_eq!(
        busy.unwrap_err().response_code(),
        Some(ResponseCode::SYSTEM_BUSY)
    );
    let mode = mode_body("T", GROUP, MessageRequestMode::Pop, 0);
    let busy = set_mode(client, A, mode.clone()).await;
    assert_eq!(refusal(busy).0, ResponseCode::SYSTEM_BUSY);
    // Then answered as usual.
    set_mode(client, A, mode).await.unwrap();
    let (queues, modes) = split(query(client, A, body).await.unwrap());
    assert_eq!((queues, modes), (qs("T", &["a-1", "b-1"]), pop()));
}
