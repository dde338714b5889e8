//! Everything a RocketMQ client *decides*, behind traits so that it can be
//! swapped and tested without a network: rebalance strategies, offset stores,
//! process queues, route tables with queue selection and latency fault
//! avoidance, and the typed broker and nameserver API over any
//! `tower::Service<RemotingCommand>`.

pub mod consumer_options;
pub mod error;

pub use consumer_options::ConsumerOptions;
pub use error::{KernelError, Result};

pub mod allocate;
pub mod offset;
pub mod process_queue;

pub use allocate::AllocateStrategy;
pub use offset::{OffsetStore, ReadOffsetType};
pub use process_queue::ProcessQueue;

pub mod api;
pub mod fault;
pub mod route;
pub mod select;

pub use api::{BrokerApi, CallMode, NameServerApi, RemotingBrokerApi};
pub use fault::{FaultConfig, FaultStrategy};
pub use route::{PublishInfo, RouteTable, Routes};
pub use select::QueueSelector;

pub mod pop;
pub mod pull;
pub mod rebalance;

pub use rebalance::{ConsumerParts, Rebalancer};

pub mod consume;
pub mod expire;
mod report_limit;
pub mod wait;

pub use consume::{
    ConcurrentListener, ConcurrentService, ConsumeEnv, ConsumeRequest, ConsumeService,
    OrderlyListener, OrderlyService, PoppedRequest,
};
pub use expire::ExpiryCleaner;
