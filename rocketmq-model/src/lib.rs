//! RocketMQ wire data: messages, queues, routes, codes, command headers and
//! bodies. Pure data: nothing here knows that sockets exist.
//!
//! Every decoder returns a [`Result`](error::Result); malformed input is a
//! [`ModelError`], never a panic.

pub mod code;
pub mod error;
pub mod header;
pub mod queue;

pub use code::{RequestCode, ResponseCode};
pub use error::{ModelError, Result};
pub use header::{CommandHeader, ExtFields};
pub use queue::MessageQueue;
