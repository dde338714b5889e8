//! Everything a RocketMQ client *decides*, behind traits so that it can be swapped
//! and tested without a network.
//!
//! This crate will hold: the rebalance strategies (`AllocateStrategy`), the offset
//! stores (`OffsetStore`: remote broker, local file, memory), `ProcessQueue`, route
//! tables with queue selection and latency fault avoidance, the rebalance, pull and
//! consume scheduling, and the typed broker and nameserver API over any
//! `tower::Service<RemotingCommand>`. It is not written yet; see `ARCHITECTURE.md`.
