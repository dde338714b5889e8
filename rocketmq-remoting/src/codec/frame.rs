//! Framing (PROTOCOL.md §1): pure, synchronous encode and decode over `BytesMut`.
//!
//! ```text
//! | length: int32 | serType: u8 | headerLen: u24 | header | body |
//! ```
//! `length` counts everything after itself. The frame-size limit counts like
//! Java's `LengthFieldBasedFrameDecoder`: the whole frame, length word included.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{binary, json};
use crate::command::{RemotingCommand, SerializeType};
use crate::error::{RemotingError, Result};

/// Java's default maximum frame size, 16 MiB including the 4-byte length word
/// (`com.rocketmq.remoting.frameMaxLength`).
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest header the 24-bit header-length field can describe.
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// The length word plus the serialize-type/header-length word.
const PREFIX_LEN: usize = 8;
/// The length word alone.
const LENGTH_FIELD_LEN: usize = 4;

/// The largest frame the int32 length word can announce, length word included.
const WIRE_MAX_FRAME_LEN: usize = i32::MAX as usize + LENGTH_FIELD_LEN;

/// Appends `cmd` as one frame to `dst`, its header in `cmd.serialize_type`.
///
/// Only the wire's own limits apply (24-bit header, int32 length); see
/// [`encode_limited`] to enforce a peer's frame limit as well. On error `dst` is
/// left as it was.
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<()> {
    encode_limited(cmd, dst, WIRE_MAX_FRAME_LEN)
}

/// Like [`encode`], but refuses with [`RemotingError::FrameTooLarge`] a frame
/// longer than `max_frame_len` (counted like Java, length word included), which
/// the peer would answer by closing the connection. On error `dst` is left as it
/// was, so no partial frame is ever written.
pub fn encode_limited(
    cmd: &RemotingCommand,
    dst: &mut BytesMut,
    max_frame_len: usize,
) -> Result<()> {
    let start = dst.len();
    let result = write_frame(cmd, dst, max_frame_len);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn write_frame(cmd: &RemotingCommand, dst: &mut BytesMut, max_frame_len: usize) -> Result<()> {
    let start = dst.len();
    dst.reserve(PREFIX_LEN + 128 + cmd.body.len());
    dst.put_u64(0); // length and header-length words, patched below
    match cmd.serialize_type {
        SerializeType::Json => json::write_header(cmd, dst),
        SerializeType::RocketMq => binary::write_header(cmd, dst)?,
    }
    let header_len = dst.len() - start - PREFIX_LEN;
    if header_len > MAX_HEADER_LEN {
        return Err(RemotingError::MalformedFrame(format!(
            "header of {header_len} bytes exceeds the 24-bit limit of {MAX_HEADER_LEN}"
        )));
    }
    let frame_len = PREFIX_LEN + header_len + cmd.body.len();
    let limit = max_frame_len.min(WIRE_MAX_FRAME_LEN);
    if frame_len > limit {
        return Err(RemotingError::FrameTooLarge {
            limit,
            actual: frame_len,
        });
    }
    // Both conversions are in range: frame_len <= i32::MAX + 4, header_len < 2^24.
    let length = (frame_len - LENGTH_FIELD_LEN) as u32;
    let type_and_header = (u32::from(cmd.serialize_type.code()) << 24) | header_len as u32;
    dst[start..start + 4].copy_from_slice(&length.to_be_bytes());
    dst[start + 4..start + 8].copy_from_slice(&type_and_header.to_be_bytes());
    dst.extend_from_slice(&cmd.body);
    Ok(())
}

/// Takes one complete frame off the front of `src`.
///
/// Returns `Ok(None)` until the whole frame is buffered (reserving room for it
/// once its length is known). A length over `max_frame_len` is refused as soon as
/// the 4-byte length word is read, before anything is buffered for it (a
/// [`MalformedFrame`](RemotingError::MalformedFrame) saying so when the word is
/// a TLS record header: the peer speaks TLS and this end does not). The body
/// is a zero-copy slice of `src`'s memory. On error the connection must be
/// closed: the stream position is lost.
pub fn decode(src: &mut BytesMut, max_frame_len: usize) -> Result<Option<RemotingCommand>> {
    let Some(frame_len) = announced_frame_len(src, max_frame_len)? else {
        return Ok(None);
    };
    if src.len() < frame_len {
        src.reserve(frame_len - src.len());
        return Ok(None);
    }
    let frame = src.split_to(frame_len).freeze();
    parse_frame(frame).map(Some)
}

/// The cheap completeness check: the full frame length (length word included),
/// validated against the limit, once the length word is buffered.
fn announced_frame_len(src: &[u8], max_frame_len: usize) -> Result<Option<usize>> {
    let Some(word) = src.first_chunk::<LENGTH_FIELD_LEN>() else {
        return Ok(None);
    };
    let length = i32::from_be_bytes(*word);
    let length = usize::try_from(length)
        .ok()
        .filter(|len| *len >= PREFIX_LEN - LENGTH_FIELD_LEN)
        .ok_or_else(|| {
            RemotingError::MalformedFrame(format!(
                "frame length {length} is below the minimum of {}",
                PREFIX_LEN - LENGTH_FIELD_LEN
            ))
        })?;
    let frame_len = length + LENGTH_FIELD_LEN;
    if frame_len > max_frame_len {
        if is_tls_record(word) {
            return Err(RemotingError::MalformedFrame(
                "a TLS record, not a remoting frame: the peer speaks TLS and this end does not"
                    .to_owned(),
            ));
        }
        return Err(RemotingError::FrameTooLarge {
            limit: max_frame_len,
            actual: frame_len,
        });
    }
    Ok(Some(frame_len))
}

/// Whether the first bytes of a "frame" are a TLS record header instead (a
/// content type from change_cipher_spec to application_data, then version
/// 3.x): what a TLS peer sends (a ClientHello) or answers (an alert) to a
/// plain one. Such a length word is always hundreds of MiB.
fn is_tls_record(word: &[u8; LENGTH_FIELD_LEN]) -> bool {
    matches!(word, [0x14..=0x17, 0x03, 0x00..=0x04, _])
}

/// Parses one complete frame (at least [`PREFIX_LEN`] bytes long).
fn parse_frame(mut frame: Bytes) -> Result<RemotingCommand> {
    frame.advance(LENGTH_FIELD_LEN);
    let word = frame.get_u32();
    let type_code = (word >> 24) as u8;
    let header_len = (word & 0x00FF_FFFF) as usize;
    let serialize_type = SerializeType::from_code(type_code).ok_or_else(|| {
        RemotingError::MalformedFrame(format!("unknown header serialize type {type_code}"))
    })?;
    if header_len > frame.len() {
        return Err(RemotingError::MalformedFrame(format!(
            "header length {header_len} exceeds the {} bytes after it",
            frame.len()
        )));
    }
    let body = frame.split_off(header_len);
    let mut cmd = match serialize_type {
        SerializeType::Json => json::read_header(&frame)?,
        SerializeType::RocketMq => binary::read_header(&frame)?,
    };
    cmd.serialize_type = serialize_type;
    cmd.body = body;
    Ok(cmd)
}
