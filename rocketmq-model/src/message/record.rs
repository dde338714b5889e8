//! The stored-message record codec (PROTOCOL.md §5.1–5.3): the bodies of
//! pull, query, view and consume-directly replies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::batch::decode_batch_entries;
use super::compression::{self, CompressionType};
use super::sysflag::{self, BORNHOST_V6_FLAG, COMPRESSED_FLAG, STOREHOSTADDRESS_V6_FLAG};
use super::{Message, MessageExt, Properties};
use crate::error::{ModelError, Result};

/// MAGICCODE of a record whose topic length is one byte.
pub const MAGIC_CODE_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// MAGICCODE of a record whose topic length is an int16 (topics over 127 bytes).
pub const MAGIC_CODE_V2: i32 = 0xDAA3_20AB_u32 as i32;

/// The default cap on one decompressed body: 8 × the 4 MiB producer limit.
pub const DEFAULT_MAX_DECOMPRESSED_BODY: usize = 32 * 1024 * 1024;

/// The default cap on all the bodies of one decoded answer together: a
/// full default pull (32 messages) of bodies at the 4 MiB producer limit.
pub const DEFAULT_MAX_DECOMPRESSED_TOTAL: usize = 128 * 1024 * 1024;

const WHAT: &str = "message record";

/// How to decode records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Decompress compressed bodies (and clear sysflag bit 0), as Java's
    /// client does by default. When false, bodies stay as stored. A body
    /// that cannot be decompressed (unknown type, corrupt, or larger than
    /// `max_decompressed_body`) also stays as stored, with bit 0 still set,
    /// rather than failing the record (Java drops it and the rest of the
    /// pull): check [`MessageExt::sys_flag`] to tell.
    pub decompress: bool,
    /// The largest decompressed body accepted; a larger one is kept
    /// compressed (and is never allocated).
    pub max_decompressed_body: usize,
    /// The most body bytes one call decoding several records hands out, all
    /// bodies together: decoding stops before the first record that would
    /// pass it (the first record is always decoded), and the records from
    /// there are left for another call ([`DecodedRecords::reached_total`]).
    /// Without it, a pull answer of a few kilobytes of compression bombs
    /// would decompress to a gigabyte (Java sets no limit at all).
    pub max_decompressed_total: usize,
    /// Check BODYCRC against the stored body (Java's client does not).
    pub check_crc: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            decompress: true,
            max_decompressed_body: DEFAULT_MAX_DECOMPRESSED_BODY,
            max_decompressed_total: DEFAULT_MAX_DECOMPRESSED_TOTAL,
            check_crc: false,
        }
    }
}

/// Decodes a pull body: zero or more records back to back, expanding inner
/// batches (§5.5). Uncompressed bodies are slices of `body` (no copy).
///
/// Any malformed record, or malformed inner batch, fails the whole body;
/// [`decode_records_prefix`] keeps what came before it.
pub fn decode_records(body: Bytes) -> Result<Vec<MessageExt>> {
    decode_records_with(body, &DecodeOptions::default())
}

/// [`decode_records`] with explicit options.
pub fn decode_records_with(body: Bytes, options: &DecodeOptions) -> Result<Vec<MessageExt>> {
    let decoded = decode_records_prefix_with(body, options);
    match decoded.malformed {
        Some(error) => Err(error),
        None if decoded.reached_total => Err(ModelError::malformed(
            WHAT,
            format!(
                "the bodies pass max_decompressed_total ({} bytes) after {} messages",
                options.max_decompressed_total,
                decoded.messages.len()
            ),
        )),
        None => Ok(decoded.messages),
    }
}

/// The records of a body up to the first that cannot be decoded.
#[derive(Debug)]
pub struct DecodedRecords {
    /// The messages of the records before the first malformed one (all of
    /// them when none is), inner batches expanded.
    pub messages: Vec<MessageExt>,
    /// Why the first malformed record (or inner batch) could not be
    /// decoded; nothing after it was read.
    pub malformed: Option<ModelError>,
    /// Whether decoding stopped at a sound record because its body would
    /// have taken the bodies past [`DecodeOptions::max_decompressed_total`]:
    /// it and the records after it were not read, and a consumer pulls
    /// again from it.
    pub reached_total: bool,
}

/// Decodes a pull body as [`decode_records`] does, but keeps the messages
/// before a malformed record (Java's `MessageDecoder.decodes` stops there
/// too). The caller decides what to do about the rest: Java's consumer
/// moves past it, losing it; this crate's consumers pull again from the
/// broken record.
pub fn decode_records_prefix(body: Bytes) -> DecodedRecords {
    decode_records_prefix_with(body, &DecodeOptions::default())
}

/// [`decode_records_prefix`] with explicit options.
pub fn decode_records_prefix_with(mut body: Bytes, options: &DecodeOptions) -> DecodedRecords {
    let mut messages = Vec::new();
    let mut malformed = None;
    let mut reached_total = false;
    // Bodies not decompressed are slices of `body`, at most a frame; they
    // count too, which keeps the sum simple and costs a frame of room. At
    // most one body over the total is ever held (the one that stops it).
    let mut room = options.max_decompressed_total;
    while !body.is_empty() {
        let decoded = decode_record_with(&mut body, options).and_then(|ext| {
            let len = ext.message.body.len();
            if len > room && !messages.is_empty() {
                return Ok(false);
            }
            room = room.saturating_sub(len);
            if sysflag::needs_unwrap(ext.sys_flag) && !sysflag::has(ext.sys_flag, COMPRESSED_FLAG) {
                messages.extend(unwrap_inner_batch(&ext)?);
            } else {
                messages.push(ext);
            }
            Ok(true)
        });
        match decoded {
            Ok(true) => {}
            Ok(false) => {
                reached_total = true;
                break;
            }
            Err(error) => {
                malformed = Some(error);
                break;
            }
        }
    }
    DecodedRecords {
        messages,
        malformed,
        reached_total,
    }
}

/// Decodes the record at the front of `buf` and advances past it. Inner
/// batches are returned as stored (see [`unwrap_inner_batch`]). On error,
/// `buf` is left unchanged.
pub fn decode_record(buf: &mut Bytes) -> Result<MessageExt> {
    decode_record_with(buf, &DecodeOptions::default())
}

/// [`decode_record`] with explicit options.
pub fn decode_record_with(buf: &mut Bytes, options: &DecodeOptions) -> Result<MessageExt> {
    let total = ByteReader::new(buf.clone(), WHAT).i32()?;
    let total = usize::try_from(total)
        .ok()
        .filter(|&t| t >= 4)
        .ok_or_else(|| ModelError::malformed(WHAT, format!("TOTALSIZE {total} is invalid")))?;
    if total > buf.len() {
        return Err(ModelError::Truncated {
            what: WHAT,
            needed: total,
            available: buf.len(),
        });
    }
    let ext = decode_fields(ByteReader::new(buf.slice(..total), WHAT), options)?;
    buf.advance(total);
    Ok(ext)
}

fn decode_fields(mut r: ByteReader, options: &DecodeOptions) -> Result<MessageExt> {
    let store_size = r.i32()?;
    let v2 = match r.i32()? {
        MAGIC_CODE_V1 => false,
        MAGIC_CODE_V2 => true,
        other => {
            return Err(ModelError::malformed(
                WHAT,
                format!("unknown MAGICCODE {:#010X}", other as u32),
            ));
        }
    };
    let body_crc = r.i32()?;
    let queue_id = r.i32()?;
    let flag = r.i32()?;
    let queue_offset = r.i64()?;
    let commit_log_offset = r.i64()?;
    let mut sys_flag = r.i32()?;
    let born_timestamp = r.i64()?;
    let born_host = r.host(sysflag::has(sys_flag, BORNHOST_V6_FLAG))?;
    let store_timestamp = r.i64()?;
    let store_host = r.host(sysflag::has(sys_flag, STOREHOSTADDRESS_V6_FLAG))?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    let body_len = r.len32("BODYLEN")?;
    let mut body = r.bytes(body_len)?;
    if options.check_crc && crc(&body) != body_crc {
        return Err(ModelError::malformed(
            WHAT,
            "BODYCRC does not match the body",
        ));
    }
    if options.decompress && !body.is_empty() && sysflag::has(sys_flag, COMPRESSED_FLAG) {
        // A body that cannot be decompressed (an unknown type, corrupt bytes,
        // more than the limit) stays as stored with its compressed flag: the
        // record itself is sound, and failing it would stop its whole queue.
        let inflated = CompressionType::from_sys_flag(sys_flag)
            .and_then(|kind| compression::decompress(&body, kind, options.max_decompressed_body));
        if let Ok(inflated) = inflated {
            body = inflated;
            sys_flag &= !COMPRESSED_FLAG;
        }
    }
    let topic_len = if v2 {
        r.len16("TOPICLEN")?
    } else {
        usize::from(r.u8()?)
    };
    let topic = String::from_utf8_lossy(&r.bytes(topic_len)?).into_owned();
    let properties_len = r.len16("PROPERTIESLEN")?;
    let properties = Properties::parse_bytes(&r.bytes(properties_len)?);
    if r.buf.has_remaining() {
        return Err(ModelError::malformed(
            WHAT,
            format!(
                "TOTALSIZE {store_size} exceeds the fields by {} bytes",
                r.buf.remaining()
            ),
        ));
    }
    Ok(MessageExt {
        message: Message {
            topic,
            body,
            flag,
            properties,
        },
        queue_id,
        store_size,
        body_crc,
        queue_offset,
        commit_log_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
    })
}

/// Expands an inner-batch record (§5.5) into its messages: message `i` has
/// queue offset `outer.queue_offset + i` and its own flag, body and properties
/// (and its inner record's TOTALSIZE and BODYCRC); every other field is the
/// outer record's.
pub fn unwrap_inner_batch(outer: &MessageExt) -> Result<Vec<MessageExt>> {
    let entries = decode_batch_entries(outer.message.body.clone())?;
    let mut messages = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let offset = i64::try_from(index)
            .ok()
            .and_then(|index| outer.queue_offset.checked_add(index))
            .ok_or_else(|| {
                ModelError::malformed(
                    "inner batch",
                    format!(
                        "message {index} of a batch at queue offset {} overflows the queue offsets",
                        outer.queue_offset
                    ),
                )
            })?;
        messages.push(MessageExt {
            message: Message {
                topic: outer.message.topic.clone(),
                body: entry.body,
                flag: entry.flag,
                properties: entry.properties,
            },
            store_size: entry.total_size,
            body_crc: entry.body_crc,
            queue_offset: offset,
            ..*outer
        });
    }
    Ok(messages)
}

/// Appends `ext` as a stored-message record and returns its length.
///
/// The body and sysflag are written as they are, i.e. as stored: to write a
/// compressed record, put the compressed body in `ext` and set the compression
/// bits. TOTALSIZE and BODYCRC are computed (`store_size` and `body_crc` are
/// ignored); the IPv6 sysflag bits follow the host addresses; the V2 magic is
/// used only for topics longer than 127 bytes. A topic or properties string
/// longer than 32767 bytes, or a body or record over 2 GiB, is
/// [`ModelError::TooLarge`].
pub fn encode_record(ext: &MessageExt, out: &mut BytesMut) -> Result<usize> {
    let msg = &ext.message;
    let topic_len = checked_len(msg.topic.len(), i16::MAX as usize, "topic")?;
    let properties_len = checked_len(
        msg.properties.encoded_len(),
        Properties::MAX_ENCODED_LEN,
        "properties",
    )?;
    let body_len = checked_len(msg.body.len(), i32::MAX as usize, "body")?;
    let v2 = topic_len > i8::MAX as usize;
    let total = 4
        + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + host_len(ext.born_host)
        + 8
        + host_len(ext.store_host)
        + 4
        + 8
        + 4
        + body_len
        + if v2 { 2 } else { 1 }
        + topic_len
        + 2
        + properties_len;
    let total = checked_len(total, i32::MAX as usize, "record")?;
    let mut sys_flag = ext.sys_flag & !(BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
    if ext.born_host.is_ipv6() {
        sys_flag |= BORNHOST_V6_FLAG;
    }
    if ext.store_host.is_ipv6() {
        sys_flag |= STOREHOSTADDRESS_V6_FLAG;
    }
    out.reserve(total);
    out.put_i32(total as i32);
    out.put_i32(if v2 { MAGIC_CODE_V2 } else { MAGIC_CODE_V1 });
    out.put_i32(crc(&msg.body));
    out.put_i32(ext.queue_id);
    out.put_i32(msg.flag);
    out.put_i64(ext.queue_offset);
    out.put_i64(ext.commit_log_offset);
    out.put_i32(sys_flag);
    out.put_i64(ext.born_timestamp);
    put_host(out, ext.born_host);
    out.put_i64(ext.store_timestamp);
    put_host(out, ext.store_host);
    out.put_i32(ext.reconsume_times);
    out.put_i64(ext.prepared_transaction_offset);
    out.put_i32(body_len as i32);
    out.put_slice(&msg.body);
    if v2 {
        out.put_i16(topic_len as i16);
    } else {
        out.put_u8(topic_len as u8);
    }
    out.put_slice(msg.topic.as_bytes());
    out.put_i16(properties_len as i16);
    msg.properties.encode_into(out);
    Ok(total)
}

/// CRC32 (IEEE) masked with 0x7FFFFFFF, as Java's `UtilAll.crc32`.
pub(super) fn crc(bytes: &[u8]) -> i32 {
    (crc32fast::hash(bytes) & 0x7FFF_FFFF) as i32
}

pub(super) fn checked_len(len: usize, limit: usize, what: &'static str) -> Result<usize> {
    if len > limit {
        Err(ModelError::TooLarge { what, limit })
    } else {
        Ok(len)
    }
}

fn host_len(addr: SocketAddr) -> usize {
    if addr.is_ipv6() { 16 + 4 } else { 4 + 4 }
}

fn put_host(out: &mut BytesMut, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
    out.put_i32(i32::from(addr.port()));
}

/// Reads big-endian fields, checking every length against what remains.
pub(super) struct ByteReader {
    pub(super) buf: Bytes,
    what: &'static str,
}

impl ByteReader {
    pub(super) fn new(buf: Bytes, what: &'static str) -> Self {
        ByteReader { buf, what }
    }

    fn need(&self, needed: usize) -> Result<()> {
        if self.buf.remaining() < needed {
            return Err(ModelError::Truncated {
                what: self.what,
                needed,
                available: self.buf.remaining(),
            });
        }
        Ok(())
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(super) fn i16(&mut self) -> Result<i16> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    pub(super) fn i32(&mut self) -> Result<i32> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    pub(super) fn i64(&mut self) -> Result<i64> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    /// The next `len` bytes, sharing the input's memory.
    pub(super) fn bytes(&mut self, len: usize) -> Result<Bytes> {
        self.need(len)?;
        Ok(self.buf.split_to(len))
    }

    /// An int32 length field; negative is malformed.
    pub(super) fn len32(&mut self, field: &'static str) -> Result<usize> {
        let value = self.i32()?;
        self.length(value, field)
    }

    /// An int16 length field; negative is malformed.
    pub(super) fn len16(&mut self, field: &'static str) -> Result<usize> {
        let value = self.i16()?;
        self.length(i32::from(value), field)
    }

    fn length(&self, value: i32, field: &'static str) -> Result<usize> {
        usize::try_from(value)
            .map_err(|_| ModelError::malformed(self.what, format!("{field} {value} is negative")))
    }

    fn host(&mut self, v6: bool) -> Result<SocketAddr> {
        let ip = if v6 {
            self.need(16)?;
            let mut octets = [0u8; 16];
            self.buf.copy_to_slice(&mut octets);
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.i32()? as u32))
        };
        let port = self.i32()?;
        let port = u16::try_from(port).map_err(|_| {
            ModelError::malformed(self.what, format!("port {port} is out of range"))
        })?;
        Ok(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{encode_batch, property};
    use proptest::prelude::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn sample() -> MessageExt {
        let mut message = Message::new("TopicA", "hello");
        message.flag = 7;
        message.properties.insert(property::TAGS, "t").unwrap();
        MessageExt {
            message,
            queue_id: 3,
            queue_offset: 0x0102_0304_0506_0708,
            commit_log_offset: 0x12AB,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: addr("192.168.0.9:40000"),
            store_timestamp: 1_700_000_000_001,
            store_host: addr("10.0.0.1:10911"),
            reconsume_times: 2,
            prepared_transaction_offset: -1,
            ..MessageExt::default()
        }
    }

    fn encode(ext: &MessageExt) -> Bytes {
        let mut buf = BytesMut::new();
        let len = encode_record(ext, &mut buf).unwrap();
        assert_eq!(len, buf.len());
        buf.freeze()
    }

    /// A record written by hand from the table of PROTOCOL.md §5.1.
    fn hand_made() -> Vec<u8> {
        let body = b"hello";
        let props = b"TAGS\x01t\x02";
        let mut v = Vec::new();
        v.extend_from_slice(&(91 + 5 + 6 + 7i32).to_be_bytes()); // 0 TOTALSIZE
        v.extend_from_slice(&[0xDA, 0xA3, 0x20, 0xA7]); // 4 MAGICCODE V1
        v.extend_from_slice(&crc(body).to_be_bytes()); // 8 BODYCRC
        v.extend_from_slice(&3i32.to_be_bytes()); // 12 QUEUEID
        v.extend_from_slice(&7i32.to_be_bytes()); // 16 FLAG
        v.extend_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes()); // 20 QUEUEOFFSET
        v.extend_from_slice(&0x12ABi64.to_be_bytes()); // 28 PHYSICALOFFSET
        v.extend_from_slice(&0i32.to_be_bytes()); // 36 SYSFLAG
        v.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // 40 BORNTIMESTAMP
        v.extend_from_slice(&[192, 168, 0, 9, 0, 0, 0x9C, 0x40]); // 48 BORNHOST
        v.extend_from_slice(&1_700_000_000_001i64.to_be_bytes()); // 56 STORETIMESTAMP
        v.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0x2A, 0x9F]); // 64 STOREHOST
        v.extend_from_slice(&2i32.to_be_bytes()); // 72 RECONSUMETIMES
        v.extend_from_slice(&(-1i64).to_be_bytes()); // 76 PREPARED TRANSACTION OFFSET
        v.extend_from_slice(&5i32.to_be_bytes()); // 84 BODYLEN
        v.extend_from_slice(body); // 88
        v.push(6); // 93 TOPICLEN
        v.extend_from_slice(b"TopicA"); // 94
        v.extend_from_slice(&7i16.to_be_bytes()); // 100 PROPERTIESLEN
        v.extend_from_slice(props); // 102
        v
    }

    #[test]
    fn hand_made_record_decodes_field_by_field() {
        let bytes = hand_made();
        assert_eq!(bytes.len(), 109);
        let ext = decode_record(&mut Bytes::from(bytes.clone())).unwrap();
        assert_eq!(ext.store_size, 109);
        assert_eq!(ext.body_crc, crc(b"hello"));
        assert_eq!(ext.queue_id, 3);
        assert_eq!(ext.message.flag, 7);
        assert_eq!(ext.queue_offset, 0x0102_0304_0506_0708);
        assert_eq!(ext.commit_log_offset, 0x12AB);
        assert_eq!(ext.sys_flag, 0);
        assert_eq!(ext.born_timestamp, 1_700_000_000_000);
        assert_eq!(ext.born_host, addr("192.168.0.9:40000"));
        assert_eq!(ext.store_timestamp, 1_700_000_000_001);
        assert_eq!(ext.store_host, addr("10.0.0.1:10911"));
        assert_eq!(ext.reconsume_times, 2);
        assert_eq!(ext.prepared_transaction_offset, -1);
        assert_eq!(&ext.body()[..], b"hello");
        assert_eq!(ext.topic(), "TopicA");
        assert_eq!(ext.tags(), Some("t"));
        assert_eq!(ext.offset_msg_id(), "0A00000100002A9F00000000000012AB");
        // The encoder writes exactly the same bytes.
        assert_eq!(&encode(&sample())[..], &bytes[..]);
    }

    #[test]
    fn bodies_are_slices_of_the_input() {
        let input = encode(&sample());
        let ext = decode_records(input.clone()).unwrap().remove(0);
        assert_eq!(ext.body().as_ptr(), input[88..].as_ptr());
    }

    #[test]
    fn ipv6_hosts_set_flags_and_shift_fields() {
        let ext = MessageExt {
            born_host: addr("[fe80::1]:1"),
            store_host: addr("[::1]:10911"),
            ..sample()
        };
        let bytes = encode(&ext);
        assert_eq!(bytes.len(), 109 + 12 + 12);
        let sys_flag = i32::from_be_bytes(bytes[36..40].try_into().unwrap());
        assert_eq!(sys_flag, BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
        // Store timestamp after the 20-byte born host.
        assert_eq!(&bytes[68..76], &1_700_000_000_001i64.to_be_bytes());
        let decoded = decode_record(&mut bytes.clone()).unwrap();
        assert_eq!(decoded.born_host, ext.born_host);
        assert_eq!(decoded.store_host, ext.store_host);
        assert_eq!(decoded.offset_msg_id().len(), 56);
        // Back to IPv4: the flags are cleared again.
        let v4 = MessageExt {
            sys_flag: decoded.sys_flag,
            ..sample()
        };
        assert_eq!(decode_record(&mut encode(&v4)).unwrap().sys_flag, 0);
    }

    #[test]
    fn long_topics_use_v2() {
        let topic = "%RETRY%".to_owned() + &"g".repeat(200);
        let mut ext = sample();
        ext.message.topic = topic.clone();
        let bytes = encode(&ext);
        assert_eq!(
            i32::from_be_bytes(bytes[4..8].try_into().unwrap()),
            MAGIC_CODE_V2
        );
        assert_eq!(decode_record(&mut bytes.clone()).unwrap().topic(), topic);
        ext.message.topic = "t".repeat(127);
        let bytes = encode(&ext);
        assert_eq!(
            i32::from_be_bytes(bytes[4..8].try_into().unwrap()),
            MAGIC_CODE_V1
        );
    }

    #[test]
    fn compressed_bodies_are_inflated() {
        let plain = Bytes::from(b"compress me ".repeat(500));
        let mut ext = sample();
        ext.message.body = compression::compress(&plain, CompressionType::Zlib, 5).unwrap();
        ext.sys_flag = sysflag::with_compression(0, CompressionType::Zlib);
        let bytes = encode(&ext);
        let decoded = decode_record(&mut bytes.clone()).unwrap();
        assert_eq!(decoded.message.body, plain);
        assert_eq!(decoded.sys_flag, 0x300);
        assert_eq!(decoded.body_crc, crc(&ext.message.body));
        // Kept as stored when asked.
        let options = DecodeOptions {
            decompress: false,
            ..DecodeOptions::default()
        };
        let raw = decode_record_with(&mut bytes.clone(), &options).unwrap();
        assert_eq!(raw.message.body, ext.message.body);
        assert_eq!(raw.sys_flag, 0x301);
        // A bomb is not inflated: the message keeps its compressed body and
        // flag, and the records after it still decode.
        let options = DecodeOptions {
            max_decompressed_body: 100,
            ..DecodeOptions::default()
        };
        let two = [bytes.clone(), encode(&sample())].concat();
        let decoded = decode_records_with(Bytes::from(two), &options).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].message.body, ext.message.body);
        assert_eq!(decoded[0].sys_flag, 0x301);
        assert_eq!(decoded[1].message.body, sample().message.body);
        // So is a zlib body flagged as LZ4, and an unknown type (7).
        for flag in [sysflag::with_compression(0, CompressionType::Lz4), 0x701] {
            ext.sys_flag = flag;
            let decoded = decode_records(encode(&ext)).unwrap();
            assert_eq!(decoded[0].message.body, ext.message.body);
            assert_eq!(decoded[0].sys_flag, flag);
        }
        // LZ4 and ZSTD bodies (Java 5.x producers with compressType set) are
        // inflated as well.
        for kind in [CompressionType::Lz4, CompressionType::Zstd] {
            ext.message.body = compression::compress(&plain, kind, 5).unwrap();
            ext.sys_flag = sysflag::with_compression(0, kind);
            let decoded = decode_record(&mut encode(&ext)).unwrap();
            assert_eq!(decoded.message.body, plain, "{kind:?}");
            assert_eq!(decoded.sys_flag, sysflag::with_compression(0, kind) & !1);
        }
    }

    #[test]
    fn one_answer_decompresses_no_more_than_its_total() {
        // Four bombs of 1 MiB of zeros each, a few hundred bytes on the wire.
        let plain = vec![0u8; 1 << 20];
        let mut bomb = sample();
        bomb.message.body = compression::compress(&plain, CompressionType::Zstd, 5).unwrap();
        bomb.sys_flag = sysflag::with_compression(0, CompressionType::Zstd);
        let one = encode(&bomb);
        let answer = Bytes::from([&one[..], &one[..], &one[..], &one[..]].concat());
        assert!(answer.len() < 4 * 1024);
        let options = DecodeOptions {
            max_decompressed_total: (5 << 20) / 2,
            ..DecodeOptions::default()
        };
        // Two fit in 2.5 MiB; decoding stops at the third, which is left
        // whole for the next pull rather than handed out compressed.
        let decoded = decode_records_prefix_with(answer.clone(), &options);
        assert!(decoded.malformed.is_none() && decoded.reached_total);
        assert_eq!(decoded.messages.len(), 2);
        assert!(
            decoded
                .messages
                .iter()
                .all(|m| m.message.body.len() == plain.len())
        );
        assert!(decode_records_with(answer.clone(), &options).is_err());
        // The first record is decoded whatever the total, so a consumer
        // always moves on.
        let tiny = DecodeOptions {
            max_decompressed_total: 1,
            ..DecodeOptions::default()
        };
        let first = decode_records_prefix_with(answer.clone(), &tiny);
        assert_eq!((first.messages.len(), first.reached_total), (1, true));
        // By default all four fit.
        let all = decode_records(answer).unwrap();
        assert!(all.iter().all(|m| m.message.body.len() == plain.len()));
    }

    #[test]
    fn crc_is_checked_on_request() {
        let mut bytes = BytesMut::from(&encode(&sample())[..]);
        bytes[88] ^= 1; // flip a body bit
        let options = DecodeOptions {
            check_crc: true,
            ..DecodeOptions::default()
        };
        assert!(decode_record_with(&mut bytes.clone().freeze(), &options).is_err());
        assert!(decode_record(&mut bytes.freeze()).is_ok());
    }

    #[test]
    fn inner_batches_are_unwrapped() {
        let inner: Vec<Message> = (0..3)
            .map(|i| {
                let mut m = Message::builder("TopicA")
                    .body(format!("m{i}"))
                    .tags(format!("t{i}"))
                    .build()
                    .unwrap();
                m.flag = i;
                m
            })
            .collect();
        let mut outer = sample();
        outer.message.body = encode_batch(&inner).unwrap();
        outer.message.properties = Properties::new();
        outer.queue_offset = 100;
        outer.sys_flag = sysflag::INNER_BATCH_FLAG | sysflag::NEED_UNWRAP_FLAG;
        let mut body = BytesMut::new();
        encode_record(&sample(), &mut body).unwrap();
        encode_record(&outer, &mut body).unwrap();
        let messages = decode_records(body.freeze()).unwrap();
        assert_eq!(messages.len(), 4);
        for (i, m) in messages[1..].iter().enumerate() {
            assert_eq!(m.message, inner[i]);
            assert_eq!(m.queue_offset, 100 + i as i64);
            assert_eq!(m.store_host, outer.store_host);
            assert_eq!(m.commit_log_offset, outer.commit_log_offset);
            assert_eq!(m.sys_flag, outer.sys_flag);
            assert_eq!(m.store_size, 22 + 2 + 8); // body "mN", properties "TAGS\x01tN\x02"
        }
        // decode_record alone leaves the batch wrapped.
        let mut single = encode(&outer);
        assert_eq!(
            decode_record(&mut single).unwrap().message.body,
            outer.message.body
        );
        // The last offset fits; one past it does not.
        outer.queue_offset = i64::MAX - 2;
        let last = unwrap_inner_batch(&outer).unwrap();
        assert_eq!(last[2].queue_offset, i64::MAX);
        outer.queue_offset = i64::MAX - 1;
        assert!(matches!(
            unwrap_inner_batch(&outer),
            Err(ModelError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_records_are_errors() {
        let good = encode(&sample());
        for cut in 1..good.len() {
            let mut buf = good.slice(..cut);
            assert!(decode_record(&mut buf).is_err(), "cut at {cut}");
            assert_eq!(buf.len(), cut, "buffer untouched on error");
        }
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = BytesMut::from(&good[..]);
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b.freeze()
        };
        let bad = [
            patch(4, &[0xCB, 0xD4, 0x31, 0x94]), // BLANK magic
            patch(0, &(-5i32).to_be_bytes()),    // negative TOTALSIZE
            patch(0, &108i32.to_be_bytes()),     // TOTALSIZE one short
            patch(52, &70_000i32.to_be_bytes()), // born port out of range
            patch(84, &(-1i32).to_be_bytes()),   // negative BODYLEN
            patch(100, &(-1i16).to_be_bytes()),  // negative PROPERTIESLEN
        ];
        for bytes in bad {
            assert!(decode_records(bytes).is_err());
        }
        // TOTALSIZE one too long, with a spare byte present.
        let mut longer = BytesMut::from(&patch(0, &110i32.to_be_bytes())[..]);
        longer.put_u8(0);
        let err = decode_records(longer.freeze()).unwrap_err();
        assert!(matches!(err, ModelError::Malformed { .. }), "{err}");
        assert!(decode_records(Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn a_prefix_decode_keeps_the_records_before_a_malformed_one() {
        let mut first = sample();
        first.queue_offset = 10;
        let mut second = sample();
        second.queue_offset = 11;
        let mut body = BytesMut::new();
        body.extend_from_slice(&encode(&first));
        body.extend_from_slice(&encode(&second));
        let good = body.clone().freeze();
        let third = encode(&sample());
        body.extend_from_slice(&third[..third.len() - 1]); // the last record cut short

        let decoded = decode_records_prefix(body.clone().freeze());
        let offsets: Vec<i64> = decoded.messages.iter().map(|m| m.queue_offset).collect();
        assert_eq!(offsets, [10, 11]);
        assert!(matches!(
            decoded.malformed,
            Some(ModelError::Truncated { .. })
        ));
        assert!(
            decode_records(body.freeze()).is_err(),
            "the strict decode fails whole"
        );

        let whole = decode_records_prefix(good);
        assert_eq!(whole.messages.len(), 2);
        assert!(whole.malformed.is_none());

        let mut broken_first = BytesMut::from(&third[..]);
        broken_first[4..8].copy_from_slice(&[0xCB, 0xD4, 0x31, 0x94]); // BLANK magic
        broken_first.extend_from_slice(&encode(&first));
        let nothing = decode_records_prefix(broken_first.freeze());
        assert!(
            nothing.messages.is_empty(),
            "nothing after a bad record is read"
        );
        assert!(nothing.malformed.is_some());
    }

    #[test]
    fn too_large_values_are_refused() {
        let mut ext = sample();
        ext.message.topic = "t".repeat(40_000);
        assert!(matches!(
            encode_record(&ext, &mut BytesMut::new()),
            Err(ModelError::TooLarge { what: "topic", .. })
        ));
        let mut ext = sample();
        ext.message
            .properties
            .insert("big", "v".repeat(40_000))
            .unwrap();
        assert!(matches!(
            encode_record(&ext, &mut BytesMut::new()),
            Err(ModelError::TooLarge { .. })
        ));
    }

    fn arb_host() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        ]
    }

    prop_compose! {
        fn arb_ext()(
            topic in prop_oneof!["[a-zA-Z0-9_%|-]{1,127}", "[a-z]{128,300}", "\\PC{1,40}"],
            body in proptest::collection::vec(any::<u8>(), 0..512),
            props in proptest::collection::btree_map("[^\u{1}\u{2}]{1,10}", "[^\u{1}\u{2}]{1,10}", 0..6),
            compressed in any::<bool>(),
            sys_flag in any::<i32>(),
            fields in (any::<i32>(), any::<i32>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i32>(), any::<i64>()),
            born_host in arb_host(),
            store_host in arb_host(),
        ) -> (MessageExt, Bytes) {
            let (queue_id, flag, queue_offset, commit_log_offset, born_timestamp, store_timestamp, reconsume_times, prepared) = fields;
            let mut message = Message::new(topic, body.clone());
            message.flag = flag;
            for (k, v) in props {
                message.properties.insert(k, v).unwrap();
            }
            // Keep the inner-batch and compression bits under the test's control.
            let mut sys_flag = sys_flag & !(0x7FF);
            sys_flag |= sys_flag >> 16 & 0x0E; // arbitrary transaction and tag bits
            if compressed {
                message.body = compression::compress(&body, CompressionType::Zlib, 5).unwrap();
                sys_flag = sysflag::with_compression(sys_flag, CompressionType::Zlib);
            }
            let ext = MessageExt {
                message, queue_id, queue_offset, commit_log_offset, sys_flag, born_timestamp,
                born_host, store_timestamp, store_host, reconsume_times,
                prepared_transaction_offset: prepared, ..MessageExt::default()
            };
            (ext, Bytes::from(body))
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(records in proptest::collection::vec(arb_ext(), 1..4)) {
            let mut buf = BytesMut::new();
            for (ext, _) in &records {
                encode_record(ext, &mut buf).unwrap();
            }
            let decoded = decode_records(buf.freeze()).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (got, (sent, plain)) in decoded.iter().zip(&records) {
                let mut expected = sent.clone();
                expected.message.body = plain.clone();
                expected.sys_flag &= !COMPRESSED_FLAG;
                if sent.born_host.is_ipv6() { expected.sys_flag |= BORNHOST_V6_FLAG; }
                if sent.store_host.is_ipv6() { expected.sys_flag |= STOREHOSTADDRESS_V6_FLAG; }
                expected.store_size = got.store_size;
                expected.body_crc = crc(&sent.message.body);
                prop_assert_eq!(got, &expected);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_records(Bytes::from(bytes));
        }

        #[test]
        fn corrupted_records_never_panic(
            (ext, _) in arb_ext(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = BytesMut::new();
            encode_record(&ext, &mut bytes).unwrap();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let bytes = bytes.freeze();
            let _ = decode_records(bytes.clone());
            let _ = decode_records(bytes.slice(..cut.index(bytes.len())));
        }
    }
}
