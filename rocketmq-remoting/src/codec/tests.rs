//! Codec tests: the PROTOCOL.md §10 byte examples, framing edge cases, and
//! property tests for both serializations.

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use proptest::prelude::*;
use rocketmq_model::{ExtFields, RequestCode};
use tokio_util::codec::{Decoder, Encoder, FramedRead};

use super::frame::{decode, encode};
use super::{DEFAULT_MAX_FRAME_LEN, RemotingCodec};
use crate::command::{LanguageCode, RemotingCommand, SerializeType};
use crate::error::RemotingError;

/// The request of §10: GET_ROUTEINFO_BY_TOPIC, opaque 1, extFields {topic: T}.
fn route_request(language: LanguageCode, serialize_type: SerializeType) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC)
        .with_serialize_type(serialize_type);
    cmd.language = language;
    cmd.opaque = 1;
    cmd.ext_fields.insert("topic", "T");
    cmd
}

const BINARY_EXAMPLE: &[u8] = &[
    0x00, 0x00, 0x00, 0x25, // length 37
    0x01, 0x00, 0x00, 0x21, // ROCKETMQ, header 33
    0x00, 0x69, 0x0c, 0x01, 0xdf, // code 105, RUST, version 479
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // opaque 1, flag 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, // no remark, extFields 12 bytes
    0x00, 0x05, b't', b'o', b'p', b'i', b'c', 0x00, 0x00, 0x00, 0x01, b'T',
];

const JSON_EXAMPLE_HEADER: &str = r#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#;

fn json_example() -> Vec<u8> {
    let mut frame = vec![0x00, 0x00, 0x00, 0x7f, 0x00, 0x00, 0x00, 0x7b];
    frame.extend_from_slice(JSON_EXAMPLE_HEADER.as_bytes());
    frame
}

fn encoded(cmd: &RemotingCommand) -> BytesMut {
    let mut dst = BytesMut::new();
    encode(cmd, &mut dst).unwrap();
    dst
}

fn decode_all(bytes: &[u8]) -> RemotingCommand {
    let mut src = BytesMut::from(bytes);
    let cmd = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    assert!(src.is_empty(), "{} bytes left over", src.len());
    cmd
}

#[test]
fn binary_example_of_protocol_10_1() {
    let cmd = route_request(LanguageCode::RUST, SerializeType::RocketMq);
    assert_eq!(&encoded(&cmd)[..], BINARY_EXAMPLE);
    assert_eq!(decode_all(BINARY_EXAMPLE), cmd);
}

#[test]
fn json_example_of_protocol_10_2() {
    let cmd = route_request(LanguageCode::JAVA, SerializeType::Json);
    assert_eq!(&encoded(&cmd)[..], &json_example()[..]);
    assert_eq!(decode_all(&json_example()), cmd);
}

#[test]
fn body_follows_the_header_and_is_a_zero_copy_slice() {
    let cmd = route_request(LanguageCode::RUST, SerializeType::RocketMq).with_body("hello");
    let mut src = encoded(&cmd);
    let base = src.as_ptr() as usize;
    let decoded = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    assert_eq!(decoded, cmd);
    assert_eq!(decoded.body.as_ptr() as usize, base + BINARY_EXAMPLE.len());
}

#[test]
fn partial_frame_waits_then_decodes() {
    let mut src = BytesMut::new();
    for (i, byte) in BINARY_EXAMPLE.iter().enumerate() {
        assert!(
            decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().is_none(),
            "after {i} bytes"
        );
        src.put_u8(*byte);
    }
    let cmd = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    assert_eq!(
        cmd,
        route_request(LanguageCode::RUST, SerializeType::RocketMq)
    );
    assert!(src.is_empty());
}

#[test]
fn two_frames_in_one_buffer_decode_in_order() {
    let mut src = BytesMut::from(&json_example()[..]);
    src.extend_from_slice(BINARY_EXAMPLE);
    src.extend_from_slice(&BINARY_EXAMPLE[..5]);
    let first = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    let second = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().unwrap();
    assert_eq!(first.serialize_type, SerializeType::Json);
    assert_eq!(second.serialize_type, SerializeType::RocketMq);
    assert!(decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap().is_none());
    assert_eq!(src.len(), 5);
}

#[test]
fn two_gib_announcement_is_refused_before_allocating() {
    let mut src = BytesMut::with_capacity(16);
    src.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0x00]);
    let err = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap_err();
    match err {
        RemotingError::FrameTooLarge { limit, actual } => {
            assert_eq!(limit, 16 * 1024 * 1024);
            assert_eq!(actual, i32::MAX as usize + 4);
        }
        other => panic!("expected FrameTooLarge, got {other}"),
    }
    assert!(src.capacity() < 1024, "capacity grew to {}", src.capacity());
}

#[test]
fn a_tls_record_is_named_not_taken_for_a_huge_frame() {
    // A TLS alert (what a TLS server answers a plain frame with) and the
    // start of a ClientHello (what a TLS client sends a plain server).
    for record in [
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32][..],
        &[0x16, 0x03, 0x01, 0x02],
    ] {
        let mut src = BytesMut::from(record);
        let err = decode(&mut src, DEFAULT_MAX_FRAME_LEN).unwrap_err();
        assert!(
            matches!(&err, RemotingError::MalformedFrame(why) if why.contains("speaks TLS")),
            "{err}"
        );
    }
}

#[test]
fn limit_counts_the_length_word_like_java() {
    let frame = encoded(&route_request(LanguageCode::RUST, SerializeType::RocketMq));
    let exact = frame.len();
    assert!(decode(&mut frame.clone(), exact).unwrap().is_some());
    let err = decode(&mut frame.clone(), exact - 1).unwrap_err();
    assert!(matches!(err, RemotingError::FrameTooLarge { actual, .. } if actual == exact));
}

#[test]
fn malformed_prefixes_are_typed_errors() {
    let cases: &[&[u8]] = &[
        &[0xff, 0xff, 0xff, 0xfe],                         // negative length
        &[0x00, 0x00, 0x00, 0x03, 0, 0, 0],                // below the minimum
        &[0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01], // header beyond the frame
        &[0x00, 0x00, 0x00, 0x06, 0x02, 0x00, 0x00, 0x02, b'{', b'}'], // serialize type 2
        &[0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x02, b'{', b'}'], // no code
    ];
    for case in cases {
        let err = decode(&mut BytesMut::from(*case), DEFAULT_MAX_FRAME_LEN).unwrap_err();
        assert!(
            matches!(err, RemotingError::MalformedFrame(_)),
            "{case:?}: {err}"
        );
    }
}

#[test]
fn codec_refuses_oversized_outgoing_frames_and_writes_nothing() {
    let mut codec = RemotingCodec::new(64);
    let mut dst = BytesMut::from(&b"previous"[..]);
    let big = route_request(LanguageCode::RUST, SerializeType::RocketMq).with_body(vec![0u8; 100]);
    let err = codec.encode(big, &mut dst).unwrap_err();
    assert!(
        matches!(
            err,
            RemotingError::FrameTooLarge {
                limit: 64,
                actual: 141
            }
        ),
        "{err}"
    );
    assert_eq!(&dst[..], b"previous");
    let small = route_request(LanguageCode::RUST, SerializeType::RocketMq);
    codec.encode(small, &mut dst).unwrap();
    assert_eq!(&dst[8..], BINARY_EXAMPLE);
}

#[test]
fn oversized_binary_key_is_refused_without_partial_output() {
    let mut cmd = route_request(LanguageCode::RUST, SerializeType::RocketMq);
    cmd.ext_fields.insert("k".repeat(40_000), "v");
    let mut dst = BytesMut::new();
    assert!(matches!(
        encode(&cmd, &mut dst),
        Err(RemotingError::MalformedFrame(_))
    ));
    assert!(dst.is_empty());
}

#[tokio::test]
async fn framed_read_decodes_a_stream_and_reports_a_truncated_tail() {
    let mut stream = json_example();
    stream.extend_from_slice(BINARY_EXAMPLE);
    stream.extend_from_slice(&BINARY_EXAMPLE[..10]);
    let mut frames = FramedRead::new(&stream[..], RemotingCodec::default());
    assert_eq!(
        frames.next().await.unwrap().unwrap().language,
        LanguageCode::JAVA
    );
    assert_eq!(
        frames.next().await.unwrap().unwrap().language,
        LanguageCode::RUST
    );
    assert!(matches!(
        frames.next().await,
        Some(Err(RemotingError::Io(_)))
    ));
}

// ---- property tests ----

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-zA-Z0-9\u{1}\u{2}é中😀 \"\\\\]{0,12}",]
}

fn ext_fields() -> impl Strategy<Value = ExtFields> {
    proptest::collection::hash_map(text(), text(), 0..8)
        .prop_map(|fields| fields.into_iter().collect())
}

prop_compose! {
    fn command(serialize_type: SerializeType)(
        code in any::<i16>(),
        wide_code in any::<i32>(),
        language in any::<u8>(),
        version in any::<i16>(),
        wide_version in any::<i32>(),
        opaque in any::<i32>(),
        flag in any::<i32>(),
        remark in proptest::option::of(text()),
        ext_fields in ext_fields(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) -> RemotingCommand {
        let json = serialize_type == SerializeType::Json;
        RemotingCommand {
            code: if json { wide_code } else { i32::from(code) },
            language: LanguageCode(language),
            version: if json { wide_version } else { i32::from(version) },
            opaque,
            flag,
            remark,
            ext_fields,
            body: Bytes::from(body),
            serialize_type,
        }
    }
}

/// What the ROCKETMQ layout can carry: empty strings read back as absent.
fn as_binary_reads_it(mut cmd: RemotingCommand) -> RemotingCommand {
    cmd.remark = cmd.remark.filter(|r| !r.is_empty());
    cmd.ext_fields.retain(|k, v| !k.is_empty() && !v.is_empty());
    cmd
}

fn round_trip(cmd: &RemotingCommand) -> RemotingCommand {
    let mut codec = RemotingCodec::default();
    let mut buf = BytesMut::new();
    codec.encode(cmd.clone(), &mut buf).unwrap();
    let back = codec.decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    back
}

proptest! {
    #[test]
    fn json_round_trips(cmd in command(SerializeType::Json)) {
        prop_assert_eq!(round_trip(&cmd), cmd);
    }

    #[test]
    fn binary_round_trips(cmd in command(SerializeType::RocketMq)) {
        let expected = as_binary_reads_it(cmd.clone());
        prop_assert_eq!(round_trip(&cmd), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_exceed_the_limit(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        limit in 8usize..300,
    ) {
        decode_everything(&bytes, limit);
    }

    #[test]
    fn near_valid_frames_never_panic_nor_exceed_the_limit(
        type_code in 0u8..3,
        header in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "\\{\"code\":[0-9]{1,3}(,\"[a-zA-Z]{1,9}\":[^}]{0,12})?\\}".prop_map(String::into_bytes),
        ],
        header_len_slack in -3i32..3,
        body in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let declared = (header.len() as i32 + header_len_slack).max(0) as u32;
        let mut frame = BytesMut::new();
        frame.put_i32((4 + header.len() + body.len()) as i32);
        frame.put_u32((u32::from(type_code) << 24) | declared);
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&body);
        decode_everything(&frame, 256);
    }
}

/// Decodes until the input is exhausted or an error; every command decoded must
/// have come from a frame within `limit`.
fn decode_everything(bytes: &[u8], limit: usize) {
    let mut src = BytesMut::from(bytes);
    loop {
        let before = src.len();
        match decode(&mut src, limit) {
            Ok(Some(_)) => assert!(before - src.len() <= limit),
            Ok(None) | Err(_) => break,
        }
    }
}

/// A header writing any fields, text or integers, through the typed path.
#[derive(Debug, Clone)]
struct AnyHeader(Vec<(String, Result<String, i64>)>);

impl rocketmq_model::CommandHeader for AnyHeader {
    const NAME: &'static str = "AnyHeader";

    fn write_fields(&self, fields: &mut rocketmq_model::header::FieldWriter<'_>) {
        for (key, value) in &self.0 {
            match value {
                Ok(text) => fields.put_str(key, text),
                Err(number) => fields.put_int(key, *number),
            }
        }
    }

    fn read_fields(_: &rocketmq_model::header::FieldReader<'_>) -> rocketmq_model::Result<Self> {
        Ok(AnyHeader(Vec::new()))
    }
}

proptest! {
    /// A typed header goes on the wire exactly as its fields written out as
    /// text would, in both serializations.
    #[test]
    fn a_typed_header_encodes_as_its_text_fields(
        fields in proptest::collection::hash_map(
            "\\PC{0,12}",
            prop_oneof!["\\PC{0,40}".prop_map(Ok), any::<i64>().prop_map(Err)],
            0..12,
        ),
        binary in any::<bool>(),
    ) {
        encodes_as_its_text_fields(AnyHeader(fields.into_iter().collect()), binary)?;
    }
}

/// Checks that `header`, kept typed until the codec writes it, goes on the
/// wire exactly as its fields written out as text do, and reads back as them.
fn encodes_as_its_text_fields<H>(header: H, binary: bool) -> Result<(), TestCaseError>
where
    H: rocketmq_model::CommandHeader + rocketmq_model::header::DynHeader,
{
    let serialize_type = if binary {
        SerializeType::RocketMq
    } else {
        SerializeType::Json
    };
    let text = RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header)
        .with_serialize_type(serialize_type);
    let typed = RemotingCommand::request_from_header(RequestCode::SEND_MESSAGE_V2, header)
        .with_serialize_type(serialize_type);
    prop_assert!(typed.ext_fields.header().is_some() && text.ext_fields.header().is_none());
    let (mut typed_frame, mut text_frame) = (BytesMut::new(), BytesMut::new());
    encode(&typed, &mut typed_frame).unwrap();
    prop_assert!(
        typed.ext_fields.header().is_some(),
        "encoding keeps the header typed"
    );
    encode(&text, &mut text_frame).unwrap();
    prop_assert_eq!(&typed_frame, &text_frame);
    let back = decode(&mut typed_frame, DEFAULT_MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    let expected = if binary {
        as_binary_reads_it(text)
    } else {
        text
    };
    prop_assert_eq!(back.ext_fields, expected.ext_fields);
    Ok(())
}

/// Keys known at compile time, as headers declare them.
const KEYED: [rocketmq_model::header::FieldKey; 4] = [
    rocketmq_model::field_key!("a"),
    rocketmq_model::field_key!("queueId"),
    rocketmq_model::field_key!("MSG_REGION"),
    rocketmq_model::field_key!("ü-key"),
];

/// A header writing its fields under [`KEYED`] keys.
#[derive(Debug, Clone)]
struct KeyedHeader(Vec<(usize, Result<String, i64>)>);

impl rocketmq_model::CommandHeader for KeyedHeader {
    const NAME: &'static str = "KeyedHeader";

    fn write_fields(&self, fields: &mut rocketmq_model::header::FieldWriter<'_>) {
        for (key, value) in &self.0 {
            match value {
                Ok(text) => fields.put_str_at(KEYED[*key], text),
                Err(number) => fields.put_int_at(KEYED[*key], *number),
            }
        }
    }

    fn read_fields(_: &rocketmq_model::header::FieldReader<'_>) -> rocketmq_model::Result<Self> {
        Ok(KeyedHeader(Vec::new()))
    }
}

proptest! {
    /// Fields under keys made at compile time go on the wire as the same
    /// fields written as text do, first or not, in both serializations.
    #[test]
    fn keys_made_at_compile_time_encode_as_text_keys(
        fields in proptest::collection::hash_map(
            0..KEYED.len(),
            prop_oneof!["\\PC{0,40}".prop_map(Ok), any::<i64>().prop_map(Err)],
            0..=KEYED.len(),
        ),
        binary in any::<bool>(),
    ) {
        encodes_as_its_text_fields(KeyedHeader(fields.into_iter().collect()), binary)?;
    }
}
