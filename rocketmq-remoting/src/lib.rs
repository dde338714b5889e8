//! The RocketMQ remoting protocol: frames, header codecs, multiplexed
//! connections, `tower` services and pluggable transports.
//!
//! Nothing here knows what a consumer group is.

pub mod command;
pub mod error;

pub use command::{LanguageCode, RemotingCommand, SerializeType};
pub use error::{RemotingError, Result};
