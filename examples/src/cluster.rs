//! [`Cluster`]: the RocketMQ cluster an example talks to. With
//! `ROCKETMQ_NAMESRV_ADDR` set, that cluster; otherwise an embedded
//! `rocketmq-testkit` cluster (a fake nameserver and broker with honest
//! broker semantics) started on loopback TCP, so the example still goes
//! through the real network path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_client::ClientConfig;
use rocketmq_testkit::{TestCluster, TestClusterBuilder};

use crate::run::BoxError;

/// The environment variable naming the nameservers (`host:port`, several
/// separated by `;`).
pub const NAMESRV_ADDR_ENV: &str = "ROCKETMQ_NAMESRV_ADDR";

/// How long an example waits for what it expects on the embedded cluster.
const EMBEDDED_PATIENCE: Duration = Duration::from_secs(20);
/// How long it waits on a real cluster, whose rebalances and transaction
/// checks run on broker timers.
const REAL_PATIENCE: Duration = Duration::from_secs(60);

/// The cluster an example runs against.
#[derive(Debug)]
pub struct Cluster {
    namesrv_addrs: Vec<String>,
    embedded: Option<TestCluster>,
}

impl Cluster {
    /// The cluster of `ROCKETMQ_NAMESRV_ADDR`, else an embedded testkit
    /// cluster with its defaults; prints which.
    pub async fn connect() -> Result<Cluster, BoxError> {
        Cluster::connect_or_start(TestCluster::builder()).await
    }

    /// The cluster of `ROCKETMQ_NAMESRV_ADDR`, else an embedded cluster
    /// built by `builder` (e.g. with short transaction checks); prints
    /// which.
    pub async fn connect_or_start(builder: TestClusterBuilder) -> Result<Cluster, BoxError> {
        let from_env = std::env::var(NAMESRV_ADDR_ENV).ok();
        let cluster = Cluster::choose(from_env.as_deref(), builder).await?;
        if cluster.is_embedded() {
            println!(
                "{NAMESRV_ADDR_ENV} is not set: started an embedded testkit cluster, nameserver at {}",
                cluster.namesrv_addr()
            );
        } else {
            println!("using the cluster at {}", cluster.namesrv_addr());
        }
        Ok(cluster)
    }

    /// The nameservers of `namesrv` when it names any, else an embedded
    /// cluster on loopback.
    async fn choose(
        namesrv: Option<&str>,
        builder: TestClusterBuilder,
    ) -> Result<Cluster, BoxError> {
        let addrs = parse_addrs(namesrv.unwrap_or_default());
        if !addrs.is_empty() {
            return Ok(Cluster {
                namesrv_addrs: addrs,
                embedded: None,
            });
        }
        let embedded = builder.start_tcp().await?;
        Ok(Cluster {
            namesrv_addrs: embedded.namesrv_addrs(),
            embedded: Some(embedded),
        })
    }

    /// The nameserver addresses, Java style (`a;b`).
    pub fn namesrv_addr(&self) -> String {
        self.namesrv_addrs.join(";")
    }

    /// Whether this is the embedded testkit cluster.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Client settings reaching this cluster (Java's defaults otherwise).
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.namesrv_addrs.iter().cloned())
    }

    /// Client settings reaching this cluster, with their own instance name:
    /// clients of one process with the same instance name share one client
    /// instance, and one instance holds one member of a group.
    pub fn client_config_named(&self, instance_name: &str) -> ClientConfig {
        let mut config = self.client_config();
        config.instance_name = instance_name.to_owned();
        config
    }

    /// How long to wait for what an example expects: seconds on the
    /// embedded cluster, up to a minute on a real one.
    pub fn patience(&self) -> Duration {
        if self.is_embedded() {
            EMBEDDED_PATIENCE
        } else {
            REAL_PATIENCE
        }
    }

    /// Stops the embedded cluster (a real one is left alone).
    pub async fn shutdown(self) {
        if let Some(embedded) = self.embedded {
            embedded.shutdown().await;
        }
    }
}

/// The addresses of a Java-style nameserver list (`a;b`, blanks ignored).
fn parse_addrs(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `prefix` with a suffix unique to this run (a valid topic or group name),
/// so that runs against a real cluster do not see each other's messages or
/// offsets.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}_{}_{nanos:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use rocketmq_model::message::validate_topic;

    use super::*;

    #[test]
    fn nameserver_lists_split_on_semicolons() {
        assert_eq!(parse_addrs("a:1; b:2;;"), ["a:1", "b:2"]);
        assert!(parse_addrs("  ").is_empty());
    }

    #[test]
    fn unique_names_are_valid_topics_and_differ() {
        let (a, b) = (unique_name("Quickstart"), unique_name("Quickstart"));
        assert!(a.starts_with("Quickstart_"));
        assert_ne!(a, b);
        validate_topic(&a).unwrap();
    }

    #[tokio::test]
    async fn a_given_address_is_used_as_is() {
        let cluster = Cluster::choose(Some("10.0.0.1:9876;10.0.0.2:9876"), TestCluster::builder())
            .await
            .unwrap();
        assert!(!cluster.is_embedded());
        assert_eq!(cluster.namesrv_addr(), "10.0.0.1:9876;10.0.0.2:9876");
        assert_eq!(cluster.patience(), REAL_PATIENCE);
        let config = cluster.client_config_named("mine");
        assert_eq!(config.namesrv_addrs, ["10.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(config.instance_name, "mine");
        assert!(config.transport.is_none(), "TCP");
    }

    #[tokio::test]
    async fn without_an_address_an_embedded_cluster_listens_on_loopback() {
        for unset in [None, Some(""), Some(" ; ")] {
            let cluster = Cluster::choose(unset, TestCluster::builder())
                .await
                .unwrap();
            assert!(cluster.is_embedded());
            let addr = cluster.namesrv_addr();
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
            assert!(!addr.ends_with(":0"), "a real port: {addr}");
            assert_eq!(cluster.patience(), EMBEDDED_PATIENCE);
            tokio::net::TcpStream::connect(&addr).await.unwrap();
            cluster.shutdown().await;
        }
    }
}
