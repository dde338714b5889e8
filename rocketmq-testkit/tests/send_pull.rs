//! Routes, sends (v1, v2, batch), pulls with filtering and long polling, and
//! offsets, through typed remoting calls on the in-memory transport.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use rocketmq_model::header::{
    BoundaryType, GetEarliestMsgStoretimeRequestHeader, GetMaxOffsetRequestHeader,
    GetMinOffsetRequestHeader, QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader,
};
use rocketmq_model::message::{property, sysflag};
use rocketmq_model::route::perm;
use rocketmq_model::{Message, OffsetMessageId, ResponseCode, decode_records, encode_batch};
use rocketmq_remoting::calls::{
    GetClusterInfo, GetEarliestMsgStoreTime, GetMaxOffset, GetMinOffset, PullStatus,
    QueryConsumerOffset, SearchOffset, SendBatch, SendHeaderKeys, SendMessage,
    UpdateConsumerOffset,
};
use rocketmq_remoting::{Call, RemotingError};
use rocketmq_testkit::{TestCluster, TopicConfig};
use tokio::time::Instant;

fn rejected_code<T: std::fmt::Debug>(result: Result<T, RemotingError>) -> ResponseCode {
    result.unwrap_err().response_code().unwrap()
}

#[tokio::test(start_paused = true)]
async fn routes_cover_created_and_auto_created_topics() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let route = client.route("T").await.unwrap();
    assert_eq!(route.queue_datas.len(), 2);
    assert_eq!(route.master_addr("broker-b"), Some("broker-b:10911"));
    assert_eq!(route.queue_datas[0].perm, perm::READ | perm::WRITE);
    let tbw = client.route("TBW102").await.unwrap();
    assert_eq!(tbw.queue_datas[0].perm & perm::INHERIT, perm::INHERIT);
    assert_eq!(
        rejected_code(client.route("NEW").await),
        ResponseCode::TOPIC_NOT_EXIST
    );

    // A send to an unknown topic creates it through TBW102 and registers it at once.
    let sent = client
        .send("broker-a:10911", &message("NEW", "x", "a"), 1)
        .await;
    assert_eq!(sent.header.queue_offset, 0);
    let route = client.route("NEW").await.unwrap();
    assert_eq!(
        route.queue_datas.len(),
        1,
        "only the broker that created it"
    );
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);

    let info = client
        .call(cluster.namesrv_addr(), GetClusterInfo)
        .await
        .unwrap();
    assert_eq!(info.cluster_addr_table["DefaultCluster"].len(), 2);
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn auto_creation_off_rejects_unknown_topics() {
    let cluster = TestCluster::builder()
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    assert_eq!(
        rejected_code(client.route("TBW102").await),
        ResponseCode::TOPIC_NOT_EXIST
    );
    let m = message("NEW", "x", "a");
    let result = client
        .call(
            "broker-a:10911",
            SendMessage::new(send_header(&m, 0), m.body.clone()),
        )
        .await;
    assert_eq!(rejected_code(result), ResponseCode::TOPIC_NOT_EXIST);
}

#[tokio::test(start_paused = true)]
async fn sends_store_offsets_properties_and_ids() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let first = message("T", "one", "a");
    let mut header = send_header(&first, 2);
    header.sys_flag = sysflag::COMPRESSED_FLAG;
    let v1 = SendMessage::new(header, first.body.clone()).with_keys(SendHeaderKeys::Long);
    let sent1 = client.call(addr, v1).await.unwrap();
    let sent2 = client.send(addr, &message("T", "two", "b"), 2).await;
    assert_eq!(
        (sent1.header.queue_offset, sent2.header.queue_offset),
        (0, 1)
    );
    assert_eq!(sent1.header.queue_id, 2);
    assert_eq!(sent1.region(), "DefaultRegion");
    // Java answers every send with its UNIQ_KEY as transaction id.
    assert_eq!(sent2.header.transaction_id.as_deref(), Some("UNIQ-two"));

    let stored = cluster.broker(0).messages("T", 2);
    assert_eq!(stored.len(), 2);
    let id = OffsetMessageId::parse(&sent2.header.msg_id).unwrap();
    assert_eq!(id.commit_log_offset, stored[1].commit_log_offset);
    assert_eq!(id.store_host, cluster.broker(0).store_host());
    assert_eq!(
        stored[0].sys_flag & sysflag::COMPRESSED_FLAG,
        sysflag::COMPRESSED_FLAG
    );
    assert_eq!(stored[0].message.uniq_key(), Some("UNIQ-one"));
    assert_eq!(stored[0].message.tags(), Some("a"));
    assert_eq!(stored[0].born_timestamp, 1_700_000_000_000);
    assert!(stored[0].born_host.ip().is_loopback());
    assert_eq!(
        stored[0].message.property(property::CLUSTER),
        Some("DefaultCluster")
    );
}

#[tokio::test(start_paused = true)]
async fn batch_sends_get_consecutive_offsets_and_joined_ids() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let messages: Vec<Message> = (0..3)
        .map(|i| message("T", &format!("m{i}"), "a"))
        .collect();
    let body = encode_batch(&messages).unwrap();
    let sent = client
        .call(
            "broker-a:10911",
            SendBatch {
                header: send_header(&messages[0], 1),
                body,
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.header.queue_offset, 0);
    assert_eq!(sent.header.msg_id.split(',').count(), 3);
    // A batch's transaction id is its header's UNIQ_KEY, when it has one.
    assert_eq!(sent.header.transaction_id.as_deref(), Some("UNIQ-m0"));
    let mut bare = send_header(&messages[0], 2);
    bare.properties = None;
    let body = encode_batch(&messages).unwrap();
    let sent_bare = client
        .call("broker-a:10911", SendBatch { header: bare, body })
        .await
        .unwrap();
    assert_eq!(sent_bare.header.transaction_id, None);
    let stored = cluster.broker(0).messages("T", 1);
    assert_eq!(bodies(&stored), ["m0", "m1", "m2"]);
    assert_eq!(stored[2].queue_offset, 2);
    assert_eq!(stored[1].message.uniq_key(), Some("UNIQ-m1"));

    // Java's CommitLog refuses a delayed or transactional batch.
    let mut delayed = send_header(&messages[0], 1);
    let mut properties = rocketmq_model::Properties::new();
    properties.insert(property::DELAY, "3").unwrap();
    delayed.properties = Some(properties.encode());
    let mut prepared = send_header(&messages[0], 1);
    prepared.sys_flag = sysflag::with_transaction_type(0, sysflag::TransactionType::Prepared);
    for header in [delayed, prepared] {
        let refused = client
            .call(
                "broker-a:10911",
                SendBatch {
                    header,
                    body: encode_batch(&messages).unwrap(),
                },
            )
            .await;
        assert_eq!(rejected_code(refused), ResponseCode::MESSAGE_ILLEGAL);
    }
    assert_eq!(
        cluster.broker(0).messages("T", 1).len(),
        3,
        "nothing stored"
    );
}

#[tokio::test(start_paused = true)]
async fn pulls_decode_filter_by_tag_and_answer_every_status() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let empty = client
        .pull(addr, pull_header("g", "T", 0, 0, false, Some("*")))
        .await;
    assert_eq!(empty.status, PullStatus::NoNewMsg);
    let moved = client
        .pull(addr, pull_header("g", "T", 0, 5, false, Some("*")))
        .await;
    assert_eq!(
        (moved.status, moved.header.next_begin_offset),
        (PullStatus::OffsetMoved, 0)
    );
    for (body, tag) in [("1", "a"), ("2", "b"), ("3", "a")] {
        client.send(addr, &message("T", body, tag), 0).await;
    }
    let all = client
        .pull(addr, pull_header("g", "T", 0, 0, false, Some("*")))
        .await;
    assert_eq!(all.status, PullStatus::Found);
    assert_eq!(bodies(&records(&all)), ["1", "2", "3"]);
    assert_eq!(
        (all.header.next_begin_offset, all.header.max_offset),
        (3, 3)
    );

    let tagged = client
        .pull(addr, pull_header("g", "T", 0, 0, false, Some("a")))
        .await;
    assert_eq!(bodies(&records(&tagged)), ["1", "3"]);
    let none = client
        .pull(addr, pull_header("g", "T", 0, 1, false, Some("c || d")))
        .await;
    assert_eq!(
        (none.status, none.header.next_begin_offset),
        (PullStatus::NoMatchedMsg, 3)
    );
    let caught_up = client
        .pull(addr, pull_header("g", "T", 0, 3, false, Some("*")))
        .await;
    assert_eq!(caught_up.status, PullStatus::NoNewMsg);
    let beyond = client
        .pull(addr, pull_header("g", "T", 0, 9, false, Some("*")))
        .await;
    assert_eq!(beyond.status, PullStatus::OffsetMoved);

    let bad_queue = client
        .call(
            addr,
            rocketmq_remoting::calls::PullMessage(pull_header("g", "T", 9, 0, false, Some("*"))),
        )
        .await;
    assert_eq!(rejected_code(bad_queue), ResponseCode::INVALID_PARAMETER);
    let unknown = client
        .call(
            addr,
            rocketmq_remoting::calls::PullMessage(pull_header("g", "U", 0, 0, false, Some("*"))),
        )
        .await;
    assert_eq!(rejected_code(unknown), ResponseCode::TOPIC_NOT_EXIST);
}

#[tokio::test(start_paused = true)]
async fn pulls_without_the_subscription_flag_use_the_heartbeat() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let no_group = client
        .call(
            addr,
            rocketmq_remoting::calls::PullMessage(pull_header("g", "T", 0, 0, false, None)),
        )
        .await;
    assert_eq!(
        rejected_code(no_group),
        ResponseCode::SUBSCRIPTION_NOT_EXIST
    );
    client
        .heartbeat(addr, consumer_heartbeat("c1", "g", "T", "b"))
        .await;
    client.send(addr, &message("T", "1", "a"), 0).await;
    client.send(addr, &message("T", "2", "b"), 0).await;
    let pulled = client
        .pull(addr, pull_header("g", "T", 0, 0, false, None))
        .await;
    assert_eq!(bodies(&records(&pulled)), ["2"]);
    let mut newer = pull_header("g", "T", 0, 0, false, None);
    newer.sub_version = i64::MAX;
    let stale = client
        .call(addr, rocketmq_remoting::calls::PullMessage(newer))
        .await;
    assert_eq!(rejected_code(stale), ResponseCode::SUBSCRIPTION_NOT_LATEST);
    let mut sql = pull_header("g", "T", 0, 0, false, Some("a > 1"));
    sql.expression_type = Some("SQL92".into());
    let sql = client
        .call(addr, rocketmq_remoting::calls::PullMessage(sql))
        .await;
    assert_eq!(
        rejected_code(sql),
        ResponseCode::SYSTEM_ERROR,
        "no SQL92 support"
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_pull_is_answered_when_a_matching_message_arrives() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let start = Instant::now();
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .pull(addr, pull_header("g", "T", 0, 0, true, Some("b")))
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.send(addr, &message("T", "skipped", "a"), 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !held.is_finished(),
        "a non-matching arrival does not wake it"
    );
    client.send(addr, &message("T", "wanted", "b"), 0).await;
    let pulled = within(held).await.unwrap();
    assert_eq!(pulled.status, PullStatus::Found);
    assert_eq!(bodies(&records(&pulled)), ["wanted"]);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "answered on arrival"
    );
}

#[tokio::test(start_paused = true)]
async fn the_periodic_check_answers_a_pull_whose_arrivals_were_all_filtered() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let start = Instant::now();
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .pull(addr, pull_header("g", "T", 0, 0, true, Some("b")))
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.send(addr, &message("T", "skipped", "a"), 0).await;
    let pulled = within(held).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "Java checks held pulls every 5 s"
    );
    assert_eq!(
        (pulled.status, pulled.header.next_begin_offset),
        (PullStatus::NoMatchedMsg, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_pull_expires_after_its_suspend_timeout() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let start = Instant::now();
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .pull(
                    "broker-a:10911",
                    pull_header("g", "T", 0, 0, true, Some("*")),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(cluster.broker(0).held_pulls(), 1, "held while it waits");
    let pulled = within(held).await.unwrap();
    assert_eq!(pulled.status, PullStatus::NoNewMsg);
    assert_eq!(start.elapsed(), Duration::from_secs(15));
    assert_eq!(cluster.broker(0).held_pulls(), 0, "answered");
}

#[tokio::test(start_paused = true)]
async fn offsets_are_committed_queried_and_bounded() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let query = |zero: Option<bool>| {
        QueryConsumerOffset(QueryConsumerOffsetRequestHeader {
            consumer_group: "g".into(),
            topic: "T".into(),
            queue_id: 1,
            set_zero_if_not_found: zero,
            broker_name: None,
        })
    };
    assert_eq!(client.call(addr, query(Some(false))).await.unwrap(), None);
    assert_eq!(
        client.call(addr, query(None)).await.unwrap(),
        None,
        "an empty queue"
    );
    let update = || {
        UpdateConsumerOffset(UpdateConsumerOffsetRequestHeader {
            consumer_group: "g".into(),
            topic: "T".into(),
            queue_id: 1,
            commit_offset: 7,
            broker_name: None,
        })
    };
    // As Java's: a group the broker never saw a consumer of has no offsets
    // to update (its subscription group is made by a heartbeat, a pull or
    // a send-back).
    assert_eq!(
        rejected_code(client.call(addr, update()).await),
        ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST
    );
    client
        .heartbeat(addr, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    client.call(addr, update()).await.unwrap();
    assert_eq!(
        client.call(addr, query(Some(false))).await.unwrap(),
        Some(7)
    );
    let unknown_topic = UpdateConsumerOffset(UpdateConsumerOffsetRequestHeader {
        consumer_group: "g".into(),
        topic: "NOPE".into(),
        queue_id: 0,
        commit_offset: 7,
        broker_name: None,
    });
    assert_eq!(
        rejected_code(client.call(addr, unknown_topic).await),
        ResponseCode::TOPIC_NOT_EXIST
    );
    let mq = rocketmq_model::MessageQueue::new("T", "broker-a", 1);
    assert_eq!(cluster.broker(0).committed_offset("g", &mq), Some(7));

    // The commit-offset flag of a pull commits too.
    let mut pull = pull_header("g", "T", 1, 0, false, Some("*"));
    pull.sys_flag |= rocketmq_model::message::sysflag::pull::COMMIT_OFFSET;
    pull.commit_offset = 9;
    client.pull(addr, pull).await;
    assert_eq!(cluster.broker(0).committed_offset("g", &mq), Some(9));

    let max = GetMaxOffset(GetMaxOffsetRequestHeader {
        topic: "T".into(),
        queue_id: 1,
        committed: true,
        broker_name: None,
    });
    assert_eq!(client.call(addr, max.clone()).await.unwrap(), 0);
    let earliest = GetEarliestMsgStoreTime(GetEarliestMsgStoretimeRequestHeader {
        topic: "T".into(),
        queue_id: 1,
        broker_name: None,
    });
    assert_eq!(client.call(addr, earliest.clone()).await.unwrap(), -1);
    client.send(addr, &message("T", "1", "a"), 1).await;
    client.send(addr, &message("T", "2", "a"), 1).await;
    assert_eq!(client.call(addr, max).await.unwrap(), 2);
    let fresh = |zero| {
        QueryConsumerOffset(QueryConsumerOffsetRequestHeader {
            consumer_group: "new".into(),
            topic: "T".into(),
            queue_id: 1,
            set_zero_if_not_found: zero,
            broker_name: None,
        })
    };
    assert_eq!(
        client.call(addr, fresh(None)).await.unwrap(),
        Some(0),
        "5.x: 0 while the first message is kept"
    );
    assert_eq!(client.call(addr, fresh(Some(false))).await.unwrap(), None);
    let min = GetMinOffset(GetMinOffsetRequestHeader {
        topic: "T".into(),
        queue_id: 1,
        broker_name: None,
    });
    assert_eq!(client.call(addr, min).await.unwrap(), 0);
    let first_time = cluster.broker(0).messages("T", 1)[0].store_timestamp;
    assert_eq!(client.call(addr, earliest).await.unwrap(), first_time);
    let search = |timestamp, boundary| {
        SearchOffset(SearchOffsetRequestHeader {
            topic: "T".into(),
            queue_id: 1,
            timestamp,
            boundary_type: Some(boundary),
            broker_name: None,
        })
    };
    assert_eq!(
        client
            .call(addr, search(0, BoundaryType::Lower))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .call(addr, search(i64::MAX, BoundaryType::Lower))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        client
            .call(addr, search(i64::MAX, BoundaryType::Upper))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn pulls_need_read_permission_but_sends_are_not_checked() {
    let read_only = TopicConfig::new(4, 4).with_perm(perm::READ);
    let write_only = TopicConfig::new(4, 4).with_perm(perm::WRITE);
    let cluster = TestCluster::builder()
        .topic_with("RO", read_only)
        .topic_with("WO", write_only)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let m = message("RO", "x", "a");
    // Java's msgCheck checks the broker's permission, not the topic's: a
    // producer keeps off a read-only topic through its route (below), and one
    // still holding an older route is stored.
    let send = client
        .call(addr, SendMessage::new(send_header(&m, 0), m.body.clone()))
        .await;
    assert!(send.is_ok(), "{send:?}");
    // Java 5.3 answers INVALID_PARAMETER (not retried) for a queue the topic
    // does not have and for a topic name that is not valid.
    let beyond = client
        .call(addr, SendMessage::new(send_header(&m, 9), m.body.clone()))
        .await;
    assert_eq!(rejected_code(beyond), ResponseCode::INVALID_PARAMETER);
    let mut bad_name = send_header(&m, 0);
    bad_name.topic = "bad topic".into();
    let bad_name = client
        .call(addr, SendMessage::new(bad_name, m.body.clone()))
        .await;
    assert_eq!(rejected_code(bad_name), ResponseCode::INVALID_PARAMETER);
    let pull = client
        .call(
            addr,
            rocketmq_remoting::calls::PullMessage(pull_header("g", "WO", 0, 0, false, Some("*"))),
        )
        .await;
    assert_eq!(rejected_code(pull), ResponseCode::NO_PERMISSION);
    assert_eq!(
        client.route("RO").await.unwrap().queue_datas[0].perm,
        perm::READ
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_cluster_serves_loopback_tcp() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .start_tcp()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    assert!(cluster.namesrv_addr().starts_with("127.0.0.1:"));
    let route = client.route("T").await.unwrap();
    let addr = route.master_addr("broker-b").unwrap().to_owned();
    assert_eq!(addr, cluster.broker(1).addr());
    let sent = client.send(&addr, &message("T", "over tcp", "a"), 3).await;
    let id = OffsetMessageId::parse(&sent.header.msg_id).unwrap();
    assert_eq!(id.store_host.to_string(), addr);
    let pulled = client
        .pull(&addr, pull_header("g", "T", 3, 0, true, Some("*")))
        .await;
    let messages = decode_records(pulled.body).unwrap();
    assert_eq!(bodies(&messages), ["over tcp"]);
    assert_eq!(messages[0].body(), &Bytes::from_static(b"over tcp"));
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_compressed_body_is_stored_as_sent_and_pulled_as_a_decodable_record() {
    use rocketmq_model::CompressionType;
    use rocketmq_model::message::compression::compress;

    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let plain = "squeeze me ".repeat(500);
    let packed = compress(plain.as_bytes(), CompressionType::Zlib, 5).unwrap();
    let m = message("T", "ignored", "a");
    let mut header = send_header(&m, 0);
    header.sys_flag = sysflag::with_compression(sysflag::COMPRESSED_FLAG, CompressionType::Zlib);
    client
        .call(addr, SendMessage::new(header, packed.clone()))
        .await
        .unwrap();
    assert_eq!(cluster.broker(0).messages("T", 0)[0].message.body, packed);
    let pulled = client
        .pull(addr, pull_header("g", "T", 0, 0, false, Some("*")))
        .await;
    let messages = records(&pulled);
    assert_eq!(
        &messages[0].message.body[..],
        plain.as_bytes(),
        "decompressed by the decoder"
    );
}

#[tokio::test(start_paused = true)]
async fn sql92_filters_by_properties_when_the_broker_enables_it() {
    let cluster = TestCluster::builder()
        .topic("T")
        .property_filter(true)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    for (body, amount) in [("small", "5"), ("big", "500"), ("huge", "5000")] {
        let m = Message::builder("T")
            .body(body)
            .tags("order")
            .property("amount", amount)
            .build()
            .unwrap();
        client.send(addr, &m, 0).await;
    }
    let sql = |expression: &str| {
        let mut header = pull_header("g", "T", 0, 0, false, Some(expression));
        header.expression_type = Some("SQL92".into());
        header
    };
    let pulled = client
        .pull(addr, sql("amount BETWEEN 100 AND 1000 OR amount < 10"))
        .await;
    assert_eq!(bodies(&records(&pulled)), ["small", "big"]);
    let tagged = client
        .pull(addr, sql("TAGS = 'order' AND amount > 1000"))
        .await;
    assert_eq!(bodies(&records(&tagged)), ["huge"]);
    let bad = client
        .call(addr, rocketmq_remoting::calls::PullMessage(sql("amount >")))
        .await;
    assert_eq!(rejected_code(bad), ResponseCode::SUBSCRIPTION_PARSE_FAILED);

    // The same through the heartbeat's subscription.
    let mut data = consumer_heartbeat("c1", "g", "T", "*");
    let sub = &mut data.consumer_data_set[0].subscription_data_set[0];
    sub.expression_type = rocketmq_model::body::ExpressionType::Sql92;
    sub.sub_string = "amount >= 500".into();
    client.heartbeat(addr, data).await;
    let pulled = client
        .pull(addr, pull_header("g", "T", 0, 0, false, None))
        .await;
    assert_eq!(bodies(&records(&pulled)), ["big", "huge"]);
}

/// Java's `PullRequestHoldService` looks at a held pull's suspend timeout
/// only when it checks, every 5 s from the broker's start, or when a message
/// arrives in its queue: a pull held from 1 s with 15 s to wait is answered
/// at the check at 20 s, not at 16 s.
#[tokio::test(start_paused = true)]
async fn an_idle_held_pull_is_answered_at_the_first_check_after_its_timeout() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            let pulled = client
                .pull(
                    "broker-a:10911",
                    pull_header("g", "T", 0, 0, true, Some("*")),
                )
                .await;
            (pulled, Instant::now())
        })
    };
    tokio::time::sleep_until(started + Duration::from_millis(19_500)).await;
    assert!(!held.is_finished(), "still held after its 15 s");
    let (pulled, answered) = within(held).await.unwrap();
    assert_eq!(pulled.status, PullStatus::NoNewMsg);
    assert_eq!(answered - started, Duration::from_secs(20));
}

/// An arrival that does not match wakes no pull, but one after the pull's
/// time is up answers it at once (Java checks the timeout of every pull of
/// the queue on each arrival).
#[tokio::test(start_paused = true)]
async fn an_arrival_after_the_timeout_answers_a_held_pull_at_once() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut header = pull_header("g", "T", 0, 0, true, Some("b"));
            header.suspend_timeout_millis = 2_000;
            let pulled = client.pull(addr, header).await;
            (pulled, Instant::now())
        })
    };
    tokio::time::sleep_until(started + Duration::from_millis(3_500)).await;
    assert!(
        !held.is_finished(),
        "its time is up, but nothing looked yet"
    );
    tokio::time::sleep_until(started + Duration::from_secs(4)).await;
    client.send(addr, &message("T", "skipped", "a"), 0).await;
    let (pulled, answered) = within(held).await.unwrap();
    assert_eq!(answered - started, Duration::from_secs(4));
    assert_eq!(
        (pulled.status, pulled.header.next_begin_offset),
        (PullStatus::NoMatchedMsg, 1)
    );
}

/// A pull answer carries the store's `GetMessageStatus` name as its remark
/// and the topic's sys flag, as Java's `composeResponseHeader` writes them.
#[tokio::test(start_paused = true)]
async fn pull_answers_carry_the_status_name_and_the_topic_sys_flag() {
    let unit = TopicConfig {
        topic_sys_flag: 1,
        ..TopicConfig::new(4, 4)
    };
    let cluster = TestCluster::builder()
        .topic_with("T", unit)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let pull = |offset: i64, expression: &str| {
        let header = pull_header("g", "T", 0, offset, false, Some(expression));
        let cmd = rocketmq_remoting::calls::PullMessage(header)
            .into_command()
            .unwrap();
        let client = client.clone();
        async move {
            let response = client
                .remoting
                .invoke(addr, cmd, CALL_TIMEOUT)
                .await
                .unwrap();
            let code = response.response_code();
            let remark = response.remark.clone().unwrap_or_default();
            let sys_flag = response.ext_fields.get("topicSysFlag").map(str::to_owned);
            (code, remark, sys_flag)
        }
    };
    let expect = |code: ResponseCode, remark: &str| (code, remark.to_owned(), Some("1".to_owned()));
    assert_eq!(
        pull(0, "*").await,
        expect(ResponseCode::PULL_NOT_FOUND, "NO_MESSAGE_IN_QUEUE")
    );
    assert_eq!(
        pull(3, "*").await,
        expect(ResponseCode::PULL_OFFSET_MOVED, "NO_MESSAGE_IN_QUEUE")
    );
    client.send(addr, &message("T", "1", "a"), 0).await;
    assert_eq!(pull(0, "*").await, expect(ResponseCode::SUCCESS, "FOUND"));
    assert_eq!(
        pull(0, "b").await,
        expect(ResponseCode::PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE")
    );
    assert_eq!(
        pull(1, "*").await,
        expect(ResponseCode::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE")
    );
    assert_eq!(
        pull(5, "*").await,
        expect(ResponseCode::PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY")
    );
    assert_eq!(
        pull(-1, "*").await,
        expect(ResponseCode::PULL_OFFSET_MOVED, "OFFSET_TOO_SMALL")
    );
}

/// Java scans `max(16000, 20 × maxMsgNums)` bytes of consume queue for
/// matches: 800 entries, or as many as the pull asks messages.
#[tokio::test(start_paused = true)]
async fn a_pull_asking_for_many_messages_scans_as_many_entries() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    for i in 0..900 {
        let tag = if i == 850 { "b" } else { "a" };
        client
            .send(addr, &message("T", &i.to_string(), tag), 0)
            .await;
    }
    let small = client
        .pull(addr, pull_header("g", "T", 0, 0, false, Some("b")))
        .await;
    assert_eq!(
        (small.status, small.header.next_begin_offset),
        (PullStatus::NoMatchedMsg, 800)
    );
    let mut many = pull_header("g", "T", 0, 0, false, Some("b"));
    many.max_msg_nums = 1024;
    let many = client.pull(addr, many).await;
    assert_eq!(many.status, PullStatus::Found);
    assert_eq!(bodies(&records(&many)), ["850"]);
    assert_eq!(many.header.next_begin_offset, 900);
}

/// Refusals of a pull as Java words them: a topic that is not readable
/// with `forbiddenType` TOPIC_FORBIDDEN (3) in the header, a queue the topic
/// does not have naming the consumer's address, no heartbeat subscription
/// with the 5.x FAQ link.
#[tokio::test(start_paused = true)]
async fn pull_refusals_carry_javas_remarks_and_forbidden_type() {
    let write_only = TopicConfig::new(4, 4).with_perm(perm::WRITE);
    let cluster = TestCluster::builder()
        .topic("T")
        .topic_with("WO", write_only)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    let refuse = |header| {
        let cmd = rocketmq_remoting::calls::PullMessage(header)
            .into_command()
            .unwrap();
        let client = client.clone();
        async move {
            let response = client
                .remoting
                .invoke(addr, cmd, CALL_TIMEOUT)
                .await
                .unwrap();
            let forbidden = response.ext_fields.get("forbiddenType").map(str::to_owned);
            (
                response.response_code(),
                response.remark.clone().unwrap_or_default(),
                forbidden,
            )
        }
    };
    let (code, remark, forbidden) = refuse(pull_header("g", "WO", 0, 0, false, Some("*"))).await;
    assert_eq!(code, ResponseCode::NO_PERMISSION);
    assert_eq!(remark, "the topic[WO] pulling message is forbidden");
    assert_eq!(forbidden.as_deref(), Some("3"));
    let (code, remark, _) = refuse(pull_header("g", "T", 7, 0, false, Some("*"))).await;
    assert_eq!(code, ResponseCode::INVALID_PARAMETER);
    assert!(
        remark.starts_with(
            "queueId[7] is illegal, topic:[T] topicConfig.readQueueNums:[4] consumer:[/127.0.0.1:"
        ),
        "{remark}"
    );
    let (code, remark, _) = refuse(pull_header("g", "T", 0, 0, false, None)).await;
    assert_eq!(code, ResponseCode::SUBSCRIPTION_NOT_EXIST);
    assert_eq!(
        remark,
        "the consumer's group info not exist\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details."
    );
}

/// Java's `queryOffset` answers -1 for "none", so a negative offset a
/// client committed reads as no offset at all.
#[tokio::test(start_paused = true)]
async fn a_negative_committed_offset_reads_as_none() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = "broker-a:10911";
    client
        .heartbeat(addr, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    let update = UpdateConsumerOffset(UpdateConsumerOffsetRequestHeader {
        consumer_group: "g".into(),
        topic: "T".into(),
        queue_id: 1,
        commit_offset: -1,
        broker_name: None,
    });
    client.call(addr, update).await.unwrap();
    let query = |zero: Option<bool>| {
        QueryConsumerOffset(QueryConsumerOffsetRequestHeader {
            consumer_group: "g".into(),
            topic: "T".into(),
            queue_id: 1,
            set_zero_if_not_found: zero,
            broker_name: None,
        })
    };
    assert_eq!(client.call(addr, query(Some(false))).await.unwrap(), None);
    client.send(addr, &message("T", "1", "a"), 1).await;
    assert_eq!(
        client.call(addr, query(None)).await.unwrap(),
        Some(0),
        "as for a group without an offset"
    );
}
