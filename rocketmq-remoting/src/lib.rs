//! The RocketMQ remoting protocol: frames, header codecs, multiplexed
//! connections, `tower` services and pluggable transports.
//!
//! Nothing here knows what a consumer group is.
//!
//! A typed call names its request code, header, body and response type, so no
//! caller matches response codes by hand:
//!
//! ```no_run
//! use std::time::Duration;
//! use rocketmq_remoting::calls::GetRouteInfo;
//! use rocketmq_remoting::client::RemotingClient;
//!
//! # async fn run() -> Result<(), rocketmq_remoting::RemotingError> {
//! let client = RemotingClient::builder().build();
//! let route = client
//!     .invoke_call("127.0.0.1:9876", GetRouteInfo::new("TBW102"), Duration::from_secs(3))
//!     .await?;
//! println!("{} brokers serve TBW102", route.broker_datas.len());
//! # Ok(())
//! # }
//! ```

pub mod call;
pub mod calls;
pub mod client;
pub mod codec;
pub mod command;
pub mod connection;
pub mod error;
pub mod hook;
pub mod server;
pub mod transport;

pub use command::{LanguageCode, RemotingCommand, SerializeType};
pub use error::{RemotingError, Result};

pub use call::{Call, Oneway, execute, execute_at};
pub use codec::{DEFAULT_MAX_FRAME_LEN, RemotingCodec};

pub use client::{AddressService, NameServerService, RemotingClient, RemotingClientBuilder};
pub use connection::{
    Connection, ConnectionConfig, InboundFactory, InboundService, WeakConnection,
};
pub use hook::{AclHook, Credentials, RpcHook, RpcHookLayer};
pub use server::Server;
pub use transport::{
    BoxedIo, Listener, MemoryListener, MemoryNetwork, TcpListener, TcpTransport, Transport,
};
#[cfg(feature = "tls")]
pub use transport::{TlsListener, TlsTransport};
