#![doc = include_str!("../README.md")]

pub mod error;

mod acl;
mod broker;
mod cluster;
mod faults;
mod handle;
mod inspect;
mod namesrv;
mod reply;
mod tls;

pub use broker::topics::TopicConfig;
pub use cluster::{MEMORY_NAMESRV_ADDR, TestCluster, TestClusterBuilder};
pub use error::{Result, TestkitError};
pub use handle::Broker;
pub use inspect::{
    ClientInfo, ConsumerGroupInfo, InFlightMessage, ProducerGroupInfo, RegisteredGroups,
};
pub use tls::{TEST_SERVER_NAMES, TestCertificates};
