//! Record codec benchmarks: decoding (and encoding) a pull body of 32 records
//! with 1 KiB bodies, the hot path of every consumer.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rocketmq_model::message::{Message, MessageExt, decode_records, encode_record, property};

const RECORDS: usize = 32;
const BODY_LEN: usize = 1024;

fn sample_records() -> Vec<MessageExt> {
    (0..RECORDS)
        .map(|i| {
            let message = Message::builder("BenchmarkTopic")
                .body(vec![b'x'; BODY_LEN])
                .tags("TagA")
                .keys([format!("key-{i}")])
                .property(
                    property::UNIQ_KEY,
                    format!("7F00000100002A9F0000000000{i:06X}"),
                )
                .build()
                .expect("valid message");
            MessageExt {
                message,
                queue_id: 1,
                queue_offset: i as i64,
                commit_log_offset: (i * 1200) as i64,
                born_timestamp: 1_700_000_000_000,
                born_host: "192.168.0.9:40000".parse().expect("address"),
                store_timestamp: 1_700_000_000_001,
                store_host: "10.0.0.1:10911".parse().expect("address"),
                ..MessageExt::default()
            }
        })
        .collect()
}

fn pull_body(records: &[MessageExt]) -> Bytes {
    let mut buf = BytesMut::new();
    for ext in records {
        encode_record(ext, &mut buf).expect("encodable record");
    }
    buf.freeze()
}

fn bench_records(c: &mut Criterion) {
    let records = sample_records();
    let body = pull_body(&records);
    let mut group = c.benchmark_group("records");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_32x1KiB", |b| {
        b.iter(|| decode_records(black_box(body.clone())).expect("valid body"))
    });
    group.bench_function("encode_32x1KiB", |b| {
        let mut buf = BytesMut::with_capacity(body.len());
        b.iter(|| {
            buf.clear();
            for ext in black_box(&records) {
                encode_record(ext, &mut buf).expect("encodable record");
            }
            buf.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_records);
criterion_main!(benches);
