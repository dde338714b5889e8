//! The frame codec: both header serializations (JSON and ROCKETMQ binary) behind
//! one bounded framing layer (PROTOCOL.md §1, §2).
//!
//! [`frame`] holds the pure functions; [`RemotingCodec`] adapts them to
//! `tokio_util::codec` for use with `Framed`/`FramedRead`/`FramedWrite`.

mod binary;
pub mod frame;
mod json;

#[cfg(test)]
mod tests;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

pub use frame::{DEFAULT_MAX_FRAME_LEN, MAX_HEADER_LEN};

use crate::command::RemotingCommand;
use crate::error::RemotingError;

/// A `tokio_util` codec for remoting frames with a frame-size limit.
///
/// The limit counts like Java's (the whole frame, length word included) and
/// applies both ways: an incoming frame over it is refused as soon as its length
/// is read ([`RemotingError::FrameTooLarge`]; close the connection), and an
/// outgoing one is refused before anything is written, since the peer would
/// close the connection on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemotingCodec {
    max_frame_len: usize,
}

impl RemotingCodec {
    /// A codec refusing frames longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        RemotingCodec { max_frame_len }
    }

    /// The frame-size limit in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Default for RemotingCodec {
    /// Java's default limit, [`DEFAULT_MAX_FRAME_LEN`] (16 MiB).
    fn default() -> Self {
        RemotingCodec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder for RemotingCodec {
    type Item = RemotingCommand;
    type Error = RemotingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, RemotingError> {
        frame::decode(src, self.max_frame_len)
    }
}

// Only by value: a second `Encoder` impl (e.g. for `&RemotingCommand`) would make
// `FramedWrite`'s `Sink` methods such as `flush` ambiguous for every user.
impl Encoder<RemotingCommand> for RemotingCodec {
    type Error = RemotingError;

    fn encode(&mut self, item: RemotingCommand, dst: &mut BytesMut) -> Result<(), RemotingError> {
        frame::encode_limited(&item, dst, self.max_frame_len)
    }
}
