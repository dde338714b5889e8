//! Header benchmarks: what a producer does per message besides the frame
//! codec — a SEND_MESSAGE_V2 request header written into its `extFields`, and
//! a send response header read back from them.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rocketmq_model::ExtFields;
use rocketmq_model::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};

/// A request header shaped like the Java producer's.
fn request_header() -> SendMessageRequestHeaderV2 {
    SendMessageRequestHeaderV2(SendMessageRequestHeader {
        producer_group: "please_rename_unique_group_name".into(),
        topic: "TopicTest".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 3,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some(
            "TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}7F0000010B2C18B4AAC27A1E4C4B0000\u{2}WAIT\u{1}true\u{2}"
                .to_owned(),
        ),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        max_reconsume_times: None,
        batch: Some(false),
        broker_name: Some("broker-a".into()),
    })
}

/// The fields of a send response as the Java broker writes them.
fn response_fields() -> ExtFields {
    [
        ("msgId", "7F00000100002A9F0000000000012345"),
        ("queueId", "1"),
        ("queueOffset", "12345"),
        ("transactionId", "7F0000010B2C18B4AAC27A1E4C4B0000"),
        ("MSG_REGION", "DefaultRegion"),
        ("TRACE_ON", "true"),
    ]
    .into_iter()
    .collect()
}

fn bench_headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    group.throughput(Throughput::Elements(1));
    let request = request_header();
    group.bench_function("write_send_request_v2", |b| {
        b.iter(|| black_box(&request).to_ext_fields())
    });
    let response = response_fields();
    group.bench_function("read_send_response", |b| {
        b.iter(|| {
            SendMessageResponseHeader::from_ext_fields(black_box(&response))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_headers);
criterion_main!(benches);
