//! Runnable examples for the RocketMQ client workspace; see the `examples`
//! targets. This library holds the plumbing they share, so each example
//! shows only the client API:
//!
//! - [`Cluster`]: the cluster named by `ROCKETMQ_NAMESRV_ADDR`, or an
//!   embedded testkit cluster on loopback TCP when it is unset;
//! - [`Tally`]: what a consumer received, with duplicates counted;
//! - [`run`]: logging, waiting for a condition, and the exit code.

pub mod cluster;
pub mod run;
pub mod tally;

pub use cluster::{Cluster, NAMESRV_ADDR_ENV, unique_name};
pub use run::{BoxError, exit_code, init_tracing, run_example, wait_until};
pub use tally::{Tally, body_text};

/// The workspace README's Rust snippets, compiled as doctests so that "A
/// taste of the API" stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
