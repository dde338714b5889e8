//! [`Connector`]: where [`RemotingBrokerApi`](super::RemotingBrokerApi)'s
//! requests go: a `tower::Service` per broker address and one for the
//! nameservers.

use std::fmt;
use std::time::Duration;

use rocketmq_remoting::client::NameServerService;
use rocketmq_remoting::{RemotingClient, RemotingCommand, RemotingError};
use tower::Service;
use tower::util::BoxCloneSyncService;

/// A boxed, cloneable service carrying remoting commands to one peer.
pub type PeerService = BoxCloneSyncService<RemotingCommand, RemotingCommand, RemotingError>;

/// Makes the services requests travel over.
///
/// `timeout` is the budget of the call about to be made: a connector whose
/// services time out on their own (like [`RemotingClient`]'s) must allow at
/// least that long. The API also enforces it around every call.
pub trait Connector: Send + Sync + 'static {
    /// A service to the broker at `addr`.
    fn broker(&self, addr: &str, timeout: Duration) -> PeerService;

    /// A service to the nameservers (with failover, if there are several).
    fn name_server(&self, timeout: Duration) -> PeerService;

    /// The client whose [`service`](RemotingClient::service) (without a
    /// timeout) [`broker`](Self::broker) returns for every address, if that is
    /// all it does. The API then calls the client directly, without boxing a
    /// service and its future for every call. `None` by default: calls go
    /// through [`broker`](Self::broker).
    fn broker_client(&self) -> Option<&RemotingClient> {
        None
    }
}

/// The real connector: one [`RemotingClient`] (a connection per broker
/// address) and its nameserver failover service.
#[derive(Clone, Debug)]
pub struct RemotingConnector {
    client: RemotingClient,
    name_servers: NameServerService,
}

impl RemotingConnector {
    /// Brokers through `client`, nameservers `name_servers` ("host:port").
    pub fn new(client: RemotingClient, name_servers: Vec<String>) -> Self {
        let name_servers = client.name_server_service(name_servers);
        RemotingConnector {
            client,
            name_servers,
        }
    }

    /// The client calls go through.
    pub fn client(&self) -> &RemotingClient {
        &self.client
    }

    /// The nameserver service (e.g. to replace its address list).
    pub fn name_servers(&self) -> &NameServerService {
        &self.name_servers
    }
}

impl Connector for RemotingConnector {
    /// The API bounds every call with `timeout` already, so the service adds
    /// no timer of its own.
    fn broker(&self, addr: &str, _timeout: Duration) -> PeerService {
        PeerService::new(self.client.service(addr).without_timeout())
    }

    fn name_server(&self, timeout: Duration) -> PeerService {
        PeerService::new(self.name_servers.clone().with_timeout(timeout))
    }

    fn broker_client(&self) -> Option<&RemotingClient> {
        Some(&self.client)
    }
}

/// Sends every request, to brokers and nameservers alike, to one service:
/// the API over any `tower::Service<RemotingCommand>` (a fake peer in tests,
/// a proxy, a service with layers of its own).
#[derive(Clone)]
pub struct ServiceConnector {
    service: PeerService,
}

impl ServiceConnector {
    /// Every request goes to `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<RemotingCommand, Response = RemotingCommand, Error = RemotingError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        ServiceConnector {
            service: PeerService::new(service),
        }
    }
}

impl fmt::Debug for ServiceConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConnector").finish_non_exhaustive()
    }
}

impl Connector for ServiceConnector {
    fn broker(&self, _addr: &str, _timeout: Duration) -> PeerService {
        self.service.clone()
    }

    fn name_server(&self, _timeout: Duration) -> PeerService {
        self.service.clone()
    }
}
