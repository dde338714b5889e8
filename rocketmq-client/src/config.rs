//! [`ClientConfig`]: the settings every client of one process shares
//! through its [`ClientInstance`](crate::ClientInstance), with the defaults of
//! Java's `ClientConfig` (option names in snake_case).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ClientError;
use crate::local_ip::local_ip;
use rocketmq_model::Namespace;
use rocketmq_remoting::{Credentials, SerializeType, Transport};

/// The instance name that stands for "make one up" (Java's default).
pub const DEFAULT_INSTANCE_NAME: &str = "DEFAULT";

/// Settings of a client instance: where the nameservers are, who the client
/// is, and how often its background tasks run.
///
/// ```
/// use std::time::Duration;
/// use rocketmq_client::ClientConfig;
///
/// let mut config = ClientConfig::new(["127.0.0.1:9876"]);
/// config.instance_name = "orders".into();
/// config.unit_name = Some("u1".into());
/// config.client_ip = Some("10.0.0.5".parse().unwrap());
/// assert_eq!(config.client_id(), "10.0.0.5@orders@u1");
/// assert_eq!(config.request_timeout, Duration::from_secs(3));
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    /// Nameserver addresses ("host:port"; Java's `namesrvAddr` split on
    /// `;`, its `http://host:port` endpoint form too). Left empty, they are
    /// read from the `NAMESRV_ADDR` environment variable when a client
    /// starts, as Java's clients do.
    pub namesrv_addrs: Vec<String>,
    /// The instance name; [`DEFAULT_INSTANCE_NAME`] is replaced by
    /// `<pid>#<nanos>` when a client starts, so that such clients never
    /// share an instance. A broadcasting consumer's local offsets file is
    /// kept under the client id with the name as configured (`ip@DEFAULT`,
    /// as in Java, whose broadcasting consumers keep the default name), so
    /// it is found again after a restart; a second broadcasting consumer of
    /// the group in the process, on the same file, is refused (give it
    /// another name).
    pub instance_name: String,
    /// The client's address in its id; `None` picks the host's: the
    /// address of its default route, else (much as Java chooses) a public
    /// IPv4 address of an interface that is up, a private one, then IPv6;
    /// else 127.0.0.1 with a warning.
    pub client_ip: Option<IpAddr>,
    /// The unit name, appended to the client id when set and not blank.
    pub unit_name: Option<String>,
    /// Header serialization of outgoing requests (Java default JSON).
    pub serialize_type: SerializeType,
    /// Timeout of calls other than sends and pulls (Java's
    /// `mqClientApiTimeout`, 3 s).
    pub request_timeout: Duration,
    /// How often routes are refreshed from the nameservers (30 s).
    pub poll_name_server_interval: Duration,
    /// How often heartbeats are sent to every broker (30 s).
    pub heartbeat_broker_interval: Duration,
    /// How often consumers persist their offsets (5 s).
    pub persist_consumer_offset_interval: Duration,
    /// How often consumers rebalance (Java's `rocketmq.client.rebalance.waitInterval`, 20 s).
    pub rebalance_interval: Duration,
    /// ACL credentials; every request is signed when set.
    pub credentials: Option<Credentials>,
    /// How to reach peers; `None` is TCP. Tests use the testkit's in-memory
    /// network.
    pub transport: Option<Arc<dyn Transport>>,
    /// The namespace of the client's topics and groups (Java's
    /// `namespace`): with `Some("ns")`, topic `T` is `ns%T` on the brokers
    /// and group `g` is `ns%g`, while the application names them `T` and
    /// `g` in and gets `T` back in what it receives. `None` takes the
    /// namespace of an Alibaba Cloud instance endpoint
    /// (`http://MQ_INST_<id>_<x>.<host>`) among the nameservers, as Java
    /// does, and no namespace otherwise; `Some("")` is no namespace. Each
    /// client keeps its own: clients of several namespaces may share an
    /// instance.
    pub namespace: Option<String>,
}

/// The longest group name (Java's `Validators.GROUP_MAX_LENGTH`).
pub const GROUP_MAX_LEN: usize = 120;

/// Checks a producer or consumer group name as Java's
/// `Validators.checkGroup`: not blank, at most 120 characters, only `%`,
/// `|`, ASCII letters, digits, `_` and `-`. (The name becomes part of retry
/// and dead-letter topic names, and of the local offset store's path.)
pub(crate) fn check_group(role: &str, group: &str) -> Result<(), ClientError> {
    let reason = if group.trim().is_empty() {
        "is empty"
    } else if group.len() > GROUP_MAX_LEN {
        "is longer than 120 characters"
    } else if !rocketmq_model::message::has_topic_or_group_chars(group) {
        "may hold only %, |, ASCII letters, digits, _ and -"
    } else {
        return Ok(());
    };
    Err(ClientError::Config(format!(
        "the {role} group {group:?} {reason}"
    )))
}

/// Nameserver addresses as Java writes a list (`"a:9876;b:9876"`, in one
/// entry or several), each trimmed, empty ones left out.
pub(crate) fn split_namesrv_addrs(addrs: impl IntoIterator<Item = String>) -> Vec<String> {
    addrs
        .into_iter()
        .flat_map(|entry| {
            entry
                .split(';')
                .map(str::trim)
                .map(without_endpoint_scheme)
                .filter(|addr| !addr.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `host:port` of Java's endpoint form, `http://host:port` (Java's
/// `ClientConfig.getNamesrvAddr` keeps what follows the last `/`).
fn without_endpoint_scheme(addr: &str) -> &str {
    match addr.strip_prefix("http://") {
        Some(rest) => rest
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default(),
        None => addr,
    }
}

/// The environment variable Java's clients read their nameservers from
/// when none is configured.
pub const NAMESRV_ADDR_ENV: &str = "NAMESRV_ADDR";

/// The configured nameservers, else those of `env` (the value of
/// [`NAMESRV_ADDR_ENV`]), as Java's `ClientConfig` defaults to it.
pub(crate) fn resolve_namesrv_addrs(configured: Vec<String>, env: Option<String>) -> Vec<String> {
    let configured = split_namesrv_addrs(configured);
    if !configured.is_empty() {
        return configured;
    }
    split_namesrv_addrs(env)
}

/// `addrs` as Java lists them: each followed by `;`.
pub(crate) fn namesrv_addr_string(addrs: &[String]) -> String {
    addrs.iter().map(|addr| format!("{addr};")).collect()
}

impl ClientConfig {
    /// The defaults with these nameservers. Each may also be a Java-style
    /// list, `"ns1:9876;ns2:9876"`.
    pub fn new<S: Into<String>>(namesrv_addrs: impl IntoIterator<Item = S>) -> Self {
        ClientConfig {
            namesrv_addrs: split_namesrv_addrs(namesrv_addrs.into_iter().map(Into::into)),
            ..ClientConfig::default()
        }
    }

    /// The client id (PROTOCOL.md §8.2): `ip@instance`, plus `@unit` when a
    /// unit name is set.
    pub fn client_id(&self) -> String {
        // IPv6 in brackets, as Java's `NetworkUtil.normalizeHostAddress`.
        let mut id = match self.effective_client_ip() {
            IpAddr::V4(ip) => format!("{ip}@{}", self.instance_name),
            IpAddr::V6(ip) => format!("[{ip}]@{}", self.instance_name),
        };
        // A blank unit name is no unit name (Java's `UtilAll.isBlank`).
        if let Some(unit) = self.unit_name.as_deref().filter(|u| !u.trim().is_empty()) {
            id.push('@');
            id.push_str(unit);
        }
        id
    }

    /// Replaces the default instance name with `<pid>#<nanos>` (Java's
    /// `changeInstanceNameToPID`); any other name is kept.
    pub fn resolve_instance_name(&mut self) {
        if self.instance_name == DEFAULT_INSTANCE_NAME {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            self.instance_name = format!("{}#{nanos}", std::process::id());
        }
    }

    /// The nameserver list as Java writes it in running info
    /// (`MQClientInstance#consumerRunningInfo`: each address followed by a
    /// `;`, so "a;b;").
    pub fn namesrv_addr_string(&self) -> String {
        namesrv_addr_string(&self.namesrv_addrs)
    }

    /// The namespace in effect: [`namespace`](Self::namespace) when set,
    /// else the one an instance endpoint implies (the first nameserver,
    /// from `NAMESRV_ADDR` when none is configured), else none. Refuses a
    /// namespace that cannot prefix names (one holding `%`, say).
    pub fn effective_namespace(&self) -> Result<Namespace, ClientError> {
        match self.namespace.as_deref() {
            Some(name) => Ok(Namespace::new(name)?),
            None => {
                let addrs = resolve_namesrv_addrs(
                    self.namesrv_addrs.clone(),
                    std::env::var(NAMESRV_ADDR_ENV).ok(),
                );
                Ok(addrs
                    .first()
                    .and_then(|addr| Namespace::from_instance_endpoint(addr))
                    .unwrap_or_default())
            }
        }
    }

    /// The IP address in the client id.
    pub fn effective_client_ip(&self) -> IpAddr {
        self.client_ip.unwrap_or_else(local_ip)
    }

    /// Refuses settings no client can run with: a zero request timeout
    /// fails every call, and a zero interval would run its task without
    /// pause. [`ClientInstance::acquire`](crate::ClientInstance::acquire)
    /// checks this, so every builder does.
    pub fn check(&self) -> Result<(), ClientError> {
        let durations = [
            ("request_timeout", self.request_timeout),
            ("poll_name_server_interval", self.poll_name_server_interval),
            ("heartbeat_broker_interval", self.heartbeat_broker_interval),
            (
                "persist_consumer_offset_interval",
                self.persist_consumer_offset_interval,
            ),
            ("rebalance_interval", self.rebalance_interval),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(ClientError::Config(format!("{name} must not be zero")));
        }
        self.effective_namespace().map(drop)
    }

    /// The settings in which `other` differs from this configuration, by
    /// field name. A second client with the same client id shares the first
    /// one's instance, and with it the first one's settings; this says which
    /// of its own are not in effect.
    pub(crate) fn differences(&self, other: &ClientConfig) -> Vec<&'static str> {
        [
            ("namesrv_addrs", self.namesrv_addrs == other.namesrv_addrs),
            (
                "serialize_type",
                self.serialize_type == other.serialize_type,
            ),
            (
                "request_timeout",
                self.request_timeout == other.request_timeout,
            ),
            (
                "poll_name_server_interval",
                self.poll_name_server_interval == other.poll_name_server_interval,
            ),
            (
                "heartbeat_broker_interval",
                self.heartbeat_broker_interval == other.heartbeat_broker_interval,
            ),
            (
                "persist_consumer_offset_interval",
                self.persist_consumer_offset_interval == other.persist_consumer_offset_interval,
            ),
            // Push consumers' own timers use their own rebalance_interval, but
            // the instance's (which lite pull consumers rely on) the first's.
            (
                "rebalance_interval",
                self.rebalance_interval == other.rebalance_interval,
            ),
            ("credentials", self.credentials == other.credentials),
            // Not transport: two transports cannot be compared (two handles
            // of one network are different objects), and naming it would
            // warn about nothing.
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            namesrv_addrs: Vec::new(),
            instance_name: DEFAULT_INSTANCE_NAME.to_owned(),
            client_ip: None,
            unit_name: None,
            serialize_type: SerializeType::Json,
            request_timeout: Duration::from_secs(3),
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            persist_consumer_offset_interval: Duration::from_secs(5),
            rebalance_interval: Duration::from_secs(20),
            credentials: None,
            transport: None,
            namespace: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("namesrv_addrs", &self.namesrv_addrs)
            .field("instance_name", &self.instance_name)
            .field("client_ip", &self.client_ip)
            .field("unit_name", &self.unit_name)
            .field("serialize_type", &self.serialize_type)
            .field("request_timeout", &self.request_timeout)
            .field("poll_name_server_interval", &self.poll_name_server_interval)
            .field("heartbeat_broker_interval", &self.heartbeat_broker_interval)
            .field(
                "persist_consumer_offset_interval",
                &self.persist_consumer_offset_interval,
            )
            .field("rebalance_interval", &self.rebalance_interval)
            .field("credentials", &self.credentials.is_some())
            .field("transport", &self.transport.is_some())
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_defaults() {
        let config = ClientConfig::default();
        assert_eq!(config.instance_name, "DEFAULT");
        assert_eq!(config.serialize_type, SerializeType::Json);
        assert_eq!(config.poll_name_server_interval, Duration::from_secs(30));
        assert_eq!(config.heartbeat_broker_interval, Duration::from_secs(30));
        assert_eq!(
            config.persist_consumer_offset_interval,
            Duration::from_secs(5)
        );
        assert!(config.credentials.is_none() && config.transport.is_none());
    }

    #[test]
    fn client_id_is_ip_at_instance_and_unit() {
        let mut config = ClientConfig::new(["ns:9876"]);
        config.client_ip = Some("10.1.2.3".parse().unwrap());
        config.instance_name = "i".into();
        assert_eq!(config.client_id(), "10.1.2.3@i");
        config.unit_name = Some(String::new());
        assert_eq!(config.client_id(), "10.1.2.3@i");
        config.unit_name = Some(" \t".into());
        assert_eq!(config.client_id(), "10.1.2.3@i", "blank, as Java's isBlank");
        config.unit_name = Some("u".into());
        assert_eq!(config.client_id(), "10.1.2.3@i@u");
        config.client_ip = Some("fd00::5".parse().unwrap());
        assert_eq!(config.client_id(), "[fd00::5]@i@u", "as Java writes IPv6");
    }

    #[test]
    fn nameservers_come_from_the_config_else_from_namesrv_addr() {
        let listed = |config: &[&str], env: Option<&str>| {
            let config = config.iter().map(|a| (*a).to_owned()).collect();
            resolve_namesrv_addrs(config, env.map(str::to_owned))
        };
        assert_eq!(listed(&["a:1"], Some("b:2")), ["a:1"]);
        assert_eq!(listed(&[" ; "], Some("b:2;c:3")), ["b:2", "c:3"]);
        assert_eq!(listed(&[], None), Vec::<String>::new());
        assert_eq!(
            listed(&["http://ns.example.com:9876"], None),
            ["ns.example.com:9876"],
            "Java's endpoint form"
        );
        assert_eq!(listed(&[], Some("http://n:1/")), ["n:1"]);
    }

    #[test]
    fn default_instance_name_becomes_pid_and_nanos() {
        let mut config = ClientConfig::default();
        config.resolve_instance_name();
        let (pid, nanos) = config.instance_name.split_once('#').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert!(nanos.parse::<u128>().is_ok());
        let mut named = ClientConfig {
            instance_name: "mine".into(),
            ..ClientConfig::default()
        };
        named.resolve_instance_name();
        assert_eq!(named.instance_name, "mine");
    }

    #[test]
    fn auto_ip_is_never_loopback_unless_nothing_else() {
        match local_ip() {
            IpAddr::V4(v4) => assert!(!v4.is_unspecified()),
            IpAddr::V6(_) => panic!("an IPv4 address is expected"),
        }
    }

    #[test]
    fn debug_hides_credentials() {
        let config = ClientConfig {
            credentials: Some(Credentials::new("ak", "very-secret")),
            ..ClientConfig::default()
        };
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn java_style_nameserver_lists_are_split() {
        let config = ClientConfig::new([" ns1:9876;ns2:9876 ", ";", "ns3:9876"]);
        assert_eq!(config.namesrv_addrs, ["ns1:9876", "ns2:9876", "ns3:9876"]);
        assert!(ClientConfig::new([" ; "]).namesrv_addrs.is_empty());
    }

    #[test]
    fn running_info_nameserver_list_ends_each_address_with_a_semicolon() {
        let config = ClientConfig::new(["ns1:9876;ns2:9876"]);
        assert_eq!(config.namesrv_addr_string(), "ns1:9876;ns2:9876;");
    }

    #[test]
    fn zero_timeouts_and_intervals_are_refused() {
        assert!(ClientConfig::new(["ns:9876"]).check().is_ok());
        let zeroed: [fn(&mut ClientConfig); 5] = [
            |c| c.request_timeout = Duration::ZERO,
            |c| c.poll_name_server_interval = Duration::ZERO,
            |c| c.heartbeat_broker_interval = Duration::ZERO,
            |c| c.persist_consumer_offset_interval = Duration::ZERO,
            |c| c.rebalance_interval = Duration::ZERO,
        ];
        for zero in zeroed {
            let mut config = ClientConfig::new(["ns:9876"]);
            zero(&mut config);
            let err = config.check().unwrap_err().to_string();
            assert!(err.contains("must not be zero"), "{err}");
        }
        let slow = ClientConfig {
            request_timeout: Duration::MAX,
            ..ClientConfig::new(["ns:9876"])
        };
        assert!(slow.check().is_ok());
    }

    #[test]
    fn namespace_is_set_or_read_from_an_instance_endpoint() {
        let endpoint = ClientConfig::new(["http://MQ_INST_123_abc.mq.example.com:80"]);
        assert_eq!(
            endpoint.effective_namespace().unwrap().as_str(),
            Some("MQ_INST_123_abc")
        );
        let set = ClientConfig {
            namespace: Some("tenant".into()),
            ..endpoint.clone()
        };
        assert_eq!(set.effective_namespace().unwrap().as_str(), Some("tenant"));
        let cleared = ClientConfig {
            namespace: Some(String::new()),
            ..endpoint
        };
        assert!(cleared.effective_namespace().unwrap().is_none());
        let plain = ClientConfig::new(["127.0.0.1:9876"]);
        assert!(plain.effective_namespace().unwrap().is_none());
        let bad = ClientConfig {
            namespace: Some("a%b".into()),
            ..plain
        };
        let err = bad.check().unwrap_err().to_string();
        assert!(err.contains("invalid namespace \"a%b\""), "{err}");
    }

    #[test]
    fn differences_name_the_settings_not_in_effect() {
        let first = ClientConfig::new(["ns:9876"]);
        let mut second = first.clone();
        assert!(first.differences(&second).is_empty());
        second.instance_name = "other".into();
        second.client_ip = Some("10.0.0.1".parse().unwrap());
        assert!(first.differences(&second).is_empty(), "part of the id");
        second.request_timeout = Duration::from_secs(10);
        second.credentials = Some(Credentials::new("ak", "sk"));
        second.namesrv_addrs.push("ns2:9876".into());
        assert_eq!(
            first.differences(&second),
            ["namesrv_addrs", "request_timeout", "credentials"]
        );
    }

    #[test]
    fn group_names_follow_javas_rule() {
        for good in ["pg", "GID_order-1", "%RETRY%cg", "a|b", &"g".repeat(120)] {
            assert!(check_group("consumer", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "  ",
            "bad group!",
            "a/b",
            "../../escaped",
            &"g".repeat(121),
        ] {
            assert!(
                matches!(check_group("consumer", bad), Err(ClientError::Config(_))),
                "{bad}"
            );
        }
    }
}
