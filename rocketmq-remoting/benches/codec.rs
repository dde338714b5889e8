//! Frame codec benchmarks: encode + decode of a SEND_MESSAGE_V2 request with a
//! 1 KiB body, in both header serializations.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rocketmq_model::RequestCode;
use rocketmq_remoting::codec::frame;
use rocketmq_remoting::{DEFAULT_MAX_FRAME_LEN, RemotingCommand, SerializeType};

/// A SEND_MESSAGE_V2 request shaped like the Java producer's (keys a..n).
fn send_message_v2(serialize_type: SerializeType) -> RemotingCommand {
    let fields = [
        ("a", "please_rename_unique_group_name"),
        ("b", "TopicTest"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "3"),
        ("f", "0"),
        ("g", "1700000000000"),
        ("h", "0"),
        (
            "i",
            "KEYS\u{1}order-42\u{2}TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}7F0000010B2C18B4AAC27A1E4C4B0000\u{2}WAIT\u{1}true\u{2}",
        ),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
        ("n", "broker-a"),
    ];
    let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2)
        .with_serialize_type(serialize_type)
        .with_body(vec![b'x'; 1024]);
    cmd.opaque = 42;
    for (key, value) in fields {
        cmd.ext_fields.insert(key.to_owned(), value.to_owned());
    }
    cmd
}

fn encode_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/send_message_v2_1KiB");
    group.throughput(Throughput::Elements(1));
    for (name, serialize_type) in [
        ("json", SerializeType::Json),
        ("rocketmq", SerializeType::RocketMq),
    ] {
        let cmd = send_message_v2(serialize_type);
        let mut buf = BytesMut::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                frame::encode(black_box(&cmd), &mut buf).unwrap_or_else(|e| panic!("{e}"));
                let decoded = frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("incomplete frame"));
                black_box(decoded)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode_decode);
criterion_main!(benches);
