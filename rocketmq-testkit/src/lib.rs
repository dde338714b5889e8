//! An in-memory fake RocketMQ nameserver and broker with fault injection, reachable
//! through `rocketmq-remoting`'s in-memory transport or on loopback TCP.
//!
//! This crate will hold `TestCluster` and the `rocketmq-testkit` binary. It is not
//! written yet; see `ARCHITECTURE.md`.
