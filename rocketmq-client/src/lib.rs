//! The public face of the RocketMQ client workspace: `ClientInstance`,
//! `Producer`, `TransactionProducer`, `PushConsumer` and `PullConsumer`, their
//! builders and listener traits.

pub mod admin;
pub mod config;
pub mod error;
pub mod instance;
mod local_ip;
pub mod metrics;
mod panic_text;
pub mod producer;
mod trace;

pub use admin::{Admin, KeyQuery};
pub use config::ClientConfig;
pub use error::{ClientError, Result};
pub use instance::{ClientInstance, ConsumerHandle, InstanceLease, ProducerHandle};
pub use producer::{
    LocalTransactionState, Producer, ProducerBuilder, ProducerOptions, SendHook, SendResult,
    SendStatus, TransactionListener, TransactionProducer,
};

pub mod consumer;

pub use consumer::{MessageSelector, PullConsumer, PushConsumer, SimpleConsumer};
