//! Runnable examples for the RocketMQ client workspace; see the `examples`
//! targets. This library holds what the examples share.

pub mod loopback;
