//! Runnable examples for the RocketMQ client workspace; see the `examples` targets.
