//! Frame codec benchmarks: encode + decode of a SEND_MESSAGE_V2 request with a
//! 1 KiB body, in both header serializations; encode of that request and decode
//! of a send response on their own (what a producer does per message).

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

/// A send response as the Java broker writes it.
const SEND_RESPONSE_JSON: &str = r#"{"code":0,"extFields":{"msgId":"7F00000100002A9F0000000000012345","queueId":"1","queueOffset":"12345","transactionId":"7F0000010B2C18B4AAC27A1E4C4B0000","MSG_REGION":"DefaultRegion","TRACE_ON":"true"},"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":453}"#;

fn one_way_each(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/json");
    group.throughput(Throughput::Elements(1));
    let request = send_message_v2(SerializeType::Json);
    let mut buf = BytesMut::with_capacity(4096);
    group.bench_function("encode_send_request_1KiB", |b| {
        b.iter(|| {
            buf.clear();
            frame::encode(black_box(&request), &mut buf).unwrap_or_else(|e| panic!("{e}"));
            black_box(buf.len())
        })
    });
    let header = SEND_RESPONSE_JSON.as_bytes();
    let mut response = BytesMut::new();
    response.extend_from_slice(&u32::try_from(header.len() + 4).unwrap_or(0).to_be_bytes());
    response.extend_from_slice(&u32::try_from(header.len()).unwrap_or(0).to_be_bytes());
    response.extend_from_slice(header);
    group.bench_function("decode_send_response", |b| {
        b.iter(|| {
            let mut src = response.clone();
            let decoded = frame::decode(&mut src, DEFAULT_MAX_FRAME_LEN)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("incomplete frame"));
            black_box(decoded)
        })
    });
    group.finish();
}

criterion_group!(benches, encode_decode, one_way_each);
criterion_main!(benches);
