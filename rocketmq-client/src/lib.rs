//! The public face of the RocketMQ client workspace.
//!
//! This crate will hold `ClientInstance`, `Producer`, `TransactionProducer`,
//! `PushConsumer` and `PullConsumer`, their builders and listener traits. It is not
//! written yet; until it is, use `rocketmq-remoting`'s typed calls directly (see the
//! `quickstart` example). See `ARCHITECTURE.md` for the plan.
