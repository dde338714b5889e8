//! [`Namespace`]: the prefix that keeps the topics and groups of one tenant
//! apart from another's on a shared cluster (Java's `ClientConfig.namespace`
//! and `NamespaceUtil`).
//!
//! On the wire a resource carries its namespace: topic `T` of namespace
//! `ns` is `ns%T`, group `g` is `ns%g`, and `g`'s retry topic is
//! `%RETRY%ns%g`. Applications name resources without it; a client wraps
//! names on their way to a broker and unwraps them on their way back.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::error::{ModelError, Result};
use crate::message::TOPIC_MAX_LEN;
use crate::queue::MessageQueue;
use crate::resource::{is_system_group, is_system_topic, split_group_prefix};

/// What separates a namespace from the name it prefixes.
pub const NAMESPACE_SEPARATOR: char = '%';

/// The prefix of an Alibaba Cloud instance id, which names the namespace of
/// an instance endpoint (Java's `NameServerAddressUtils.INSTANCE_PREFIX`).
pub const INSTANCE_PREFIX: &str = "MQ_INST_";

/// A namespace, or none (the default, under which every name is left as it
/// is). Cheap to clone.
///
/// Wrapping and unwrapping follow Java's `NamespaceUtil`: system topics and
/// groups are never wrapped, a retry or dead-letter prefix stays in front,
/// a name already in the namespace is not wrapped twice, and a name in
/// another namespace is not unwrapped.
///
/// ```
/// use rocketmq_model::Namespace;
///
/// let ns = Namespace::new("tenant1")?;
/// assert_eq!(ns.wrap("orders"), "tenant1%orders");
/// assert_eq!(ns.wrap("tenant1%orders"), "tenant1%orders");
/// assert_eq!(ns.wrap("%RETRY%billing"), "%RETRY%tenant1%billing");
/// assert_eq!(ns.unwrap("%RETRY%tenant1%billing"), "%RETRY%billing");
/// assert_eq!(ns.wrap("TBW102"), "TBW102");
/// assert_eq!(Namespace::none().wrap("orders"), "orders");
/// # Ok::<(), rocketmq_model::ModelError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Namespace(Option<Arc<str>>);

impl Namespace {
    /// No namespace: names are used as they are.
    pub fn none() -> Self {
        Namespace(None)
    }

    /// The namespace `name`; an empty name is no namespace (as Java treats
    /// an empty one). A name holds only `|`, ASCII letters, digits, `_` and
    /// `-` (the characters of topic names, without the separator `%`),
    /// leaves room for a name after it, and does not start as the broker's
    /// system names do (`rmq_sys_`, `CID_RMQ_SYS_`: its names could not be
    /// told from those, and would never be taken out of it).
    pub fn new(name: &str) -> Result<Self> {
        if name.is_empty() {
            return Ok(Namespace::none());
        }
        let reason = if name.contains(NAMESPACE_SEPARATOR) {
            "it may not hold the separator %"
        } else if !crate::message::has_topic_or_group_chars(name) {
            "only |, ASCII letters, digits, _ and - are allowed"
        } else if name.len() >= TOPIC_MAX_LEN - 1 {
            "it leaves no room for a topic in 127 characters"
        } else if is_system(&format!("{name}{NAMESPACE_SEPARATOR}")) {
            // Its names would read as the broker's own, never unwrapped.
            "it starts as the broker's system topics and groups do"
        } else {
            return Ok(Namespace(Some(name.into())));
        };
        Err(ModelError::InvalidNamespace {
            namespace: name.to_owned(),
            reason,
        })
    }

    /// The namespace an Alibaba Cloud instance endpoint implies, as Java's
    /// `ClientConfig.getNamespace` reads it when no namespace is set: the
    /// instance id `MQ_INST_<a>_<b>` of `[scheme://]MQ_INST_<a>_<b>.<host>...`.
    pub fn from_instance_endpoint(addr: &str) -> Option<Self> {
        let host = match addr.split_once("://") {
            Some((scheme, rest)) if is_word(scheme) => rest,
            Some(_) => return None,
            None => addr,
        };
        let (instance, _) = host.split_once('.')?;
        let id = instance.strip_prefix(INSTANCE_PREFIX)?;
        // Java's pattern: `\w+_\w+` after the prefix.
        let inner_separator = id
            .char_indices()
            .any(|(at, c)| c == '_' && at > 0 && at + 1 < id.len());
        if !is_word(id) || !inner_separator {
            return None;
        }
        Namespace::new(instance).ok()
    }

    /// Whether this is no namespace.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The namespace's name, `None` for no namespace.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `resource` (a topic or group) as the broker knows it: `ns%resource`,
    /// behind its retry or dead-letter prefix if it has one. Left as it is
    /// without a namespace, for system topics and groups, and when it
    /// already carries this namespace (Java's `wrapNamespace`).
    pub fn wrap<'a>(&self, resource: &'a str) -> Cow<'a, str> {
        let Some(ns) = self.0.as_deref() else {
            return Cow::Borrowed(resource);
        };
        if resource.is_empty() || is_system(resource) {
            return Cow::Borrowed(resource);
        }
        let (prefix, name) = split_group_prefix(resource);
        if in_namespace(name, ns) {
            return Cow::Borrowed(resource);
        }
        Cow::Owned(format!("{prefix}{ns}{NAMESPACE_SEPARATOR}{name}"))
    }

    /// `resource` as the application names it: this namespace taken off,
    /// its retry or dead-letter prefix kept. A resource of another namespace
    /// or of none is left as it is (Java's `withoutNamespace(resource,
    /// namespace)`).
    pub fn unwrap<'a>(&self, resource: &'a str) -> Cow<'a, str> {
        let Some(ns) = self.0.as_deref() else {
            return Cow::Borrowed(resource);
        };
        if is_system(resource) {
            return Cow::Borrowed(resource);
        }
        let (prefix, name) = split_group_prefix(resource);
        if !in_namespace(name, ns) {
            return Cow::Borrowed(resource);
        }
        let bare = &name[ns.len() + NAMESPACE_SEPARATOR.len_utf8()..];
        if prefix.is_empty() {
            Cow::Borrowed(bare)
        } else {
            Cow::Owned(format!("{prefix}{bare}"))
        }
    }

    /// `mq` with its topic wrapped (Java's `queueWithNamespace`).
    pub fn wrap_queue<'a>(&self, mq: &'a MessageQueue) -> Cow<'a, MessageQueue> {
        with_topic(mq, self.wrap(&mq.topic))
    }

    /// `mq` with its topic unwrapped.
    pub fn unwrap_queue<'a>(&self, mq: &'a MessageQueue) -> Cow<'a, MessageQueue> {
        with_topic(mq, self.unwrap(&mq.topic))
    }

    /// Unwraps `topic` in place; does nothing when it is not in this
    /// namespace.
    pub fn unwrap_in_place(&self, topic: &mut String) {
        let bare = self.unwrap(topic);
        if bare.len() != topic.len() {
            let bare = bare.into_owned();
            *topic = bare;
        }
    }
}

fn with_topic<'a>(mq: &'a MessageQueue, topic: Cow<'_, str>) -> Cow<'a, MessageQueue> {
    match topic {
        Cow::Borrowed(same) if same.len() == mq.topic.len() => Cow::Borrowed(mq),
        topic => Cow::Owned(MessageQueue::new(
            topic.into_owned(),
            mq.broker_name.clone(),
            mq.queue_id,
        )),
    }
}

/// Java's `NamespaceUtil.isSystemResource`.
fn is_system(resource: &str) -> bool {
    is_system_topic(resource) || is_system_group(resource)
}

/// Whether `name` (its retry or dead-letter prefix taken off) starts with
/// `ns%`.
fn in_namespace(name: &str, ns: &str) -> bool {
    name.strip_prefix(ns)
        .is_some_and(|rest| rest.starts_with(NAMESPACE_SEPARATOR))
}

/// Whether `text` is non-empty and all regex word characters (`\w`).
fn is_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str().unwrap_or(""))
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(ns) => write!(f, "Namespace({ns:?})"),
            None => f.write_str("Namespace(none)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    // The cases of Java's NamespaceUtilTest.
    #[test]
    fn wraps_as_java() {
        let inst = ns("MQ_INST_XXX");
        assert_eq!(inst.wrap("TOPIC_XXX"), "MQ_INST_XXX%TOPIC_XXX");
        assert_eq!(inst.wrap("MQ_INST_XXX%TOPIC_XXX"), "MQ_INST_XXX%TOPIC_XXX");
        assert_eq!(inst.wrap("%RETRY%GID_XXX"), "%RETRY%MQ_INST_XXX%GID_XXX");
        assert_eq!(
            inst.wrap("%RETRY%MQ_INST_XXX%GID_XXX"),
            "%RETRY%MQ_INST_XXX%GID_XXX"
        );
        assert_eq!(inst.wrap("%DLQ%GID_XXX"), "%DLQ%MQ_INST_XXX%GID_XXX");
        assert_eq!(
            inst.wrap("%DLQ%MQ_INST_XXX%GID_XXX"),
            "%DLQ%MQ_INST_XXX%GID_XXX"
        );
        assert_eq!(inst.wrap("rmq_sys_topic"), "rmq_sys_topic");
        assert_eq!(inst.wrap("CID_RMQ_SYS_TRANS"), "CID_RMQ_SYS_TRANS");
        assert_eq!(inst.wrap(""), "");
        // Another namespace's name is wrapped again, as Java does.
        assert_eq!(inst.wrap("other%T"), "MQ_INST_XXX%other%T");
    }

    #[test]
    fn unwraps_as_java() {
        let inst = ns("MQ_INST_XXX");
        assert_eq!(inst.unwrap("MQ_INST_XXX%TOPIC_XXX"), "TOPIC_XXX");
        assert_eq!(inst.unwrap("MQ_INST_XXX%GID_XXX"), "GID_XXX");
        assert_eq!(inst.unwrap("%RETRY%MQ_INST_XXX%GID_XXX"), "%RETRY%GID_XXX");
        assert_eq!(inst.unwrap("%DLQ%MQ_INST_XXX%GID_XXX"), "%DLQ%GID_XXX");
        let wrong = ns("MQ_INST_XXX1");
        assert_eq!(
            wrong.unwrap("%RETRY%MQ_INST_XXX%GID_XXX"),
            "%RETRY%MQ_INST_XXX%GID_XXX"
        );
        // A namespace that is a prefix of another's is not that one.
        assert_eq!(ns("MQ_INST").unwrap("MQ_INST_XXX%T"), "MQ_INST_XXX%T");
        assert_eq!(inst.unwrap("TOPIC_XXX"), "TOPIC_XXX");
        assert_eq!(inst.unwrap("TBW102"), "TBW102");
    }

    #[test]
    fn no_namespace_changes_nothing() {
        let none = Namespace::none();
        assert!(none.is_none());
        assert_eq!(Namespace::new("").unwrap(), none);
        assert!(matches!(none.wrap("T"), Cow::Borrowed("T")));
        assert!(matches!(none.unwrap("ns%T"), Cow::Borrowed("ns%T")));
    }

    #[test]
    fn refuses_names_that_cannot_prefix() {
        for bad in [
            "a%b",
            "a b",
            "ns.1",
            &"n".repeat(126),
            "rmq_sys_x",
            "CID_RMQ_SYS_x",
        ] {
            let err = Namespace::new(bad).unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidNamespace { .. }),
                "{bad}: {err}"
            );
        }
        assert!(Namespace::new(&"n".repeat(125)).is_ok());
    }

    #[test]
    fn queues_keep_broker_and_id() {
        let inst = ns("ns");
        let mq = MessageQueue::new("T", "b", 3);
        let wrapped = inst.wrap_queue(&mq).into_owned();
        assert_eq!(wrapped, MessageQueue::new("ns%T", "b", 3));
        assert_eq!(inst.unwrap_queue(&wrapped).into_owned(), mq);
        assert!(matches!(inst.wrap_queue(&wrapped), Cow::Borrowed(_)));
        assert!(matches!(inst.unwrap_queue(&mq), Cow::Borrowed(_)));
    }

    #[test]
    fn unwraps_in_place() {
        let inst = ns("ns");
        let mut topic = "ns%T".to_owned();
        inst.unwrap_in_place(&mut topic);
        assert_eq!(topic, "T");
        inst.unwrap_in_place(&mut topic);
        assert_eq!(topic, "T");
    }

    #[test]
    fn reads_the_instance_endpoint_as_java() {
        let found = |addr| Namespace::from_instance_endpoint(addr).map(|ns| ns.to_string());
        assert_eq!(
            found("http://MQ_INST_1234_abcd.cn-hangzhou.mq.aliyuncs.com:80").as_deref(),
            Some("MQ_INST_1234_abcd")
        );
        assert_eq!(
            found("MQ_INST_1_2.mq.example.com:9876").as_deref(),
            Some("MQ_INST_1_2")
        );
        for not_one in [
            "127.0.0.1:9876",
            "MQ_INST_1234.host:80",
            "MQ_INST_1234_.host:80",
            "MQ_INST_x_y:80",
            "http://a/MQ_INST_1_2.host:80",
            "MQ_INST_1-2_3.host:80",
        ] {
            assert_eq!(found(not_one), None, "{not_one}");
        }
    }

    proptest! {
        #[test]
        fn unwrap_undoes_wrap(
            name in "[A-Za-z0-9_|-]{1,20}",
            resource in "(%RETRY%|%DLQ%)?[A-Za-z0-9_|-]{1,40}",
        ) {
            let ns = Namespace::new(&name).unwrap();
            let wrapped = ns.wrap(&resource).into_owned();
            prop_assert_eq!(ns.wrap(&wrapped), wrapped.as_str(), "wrapping twice");
            if is_system(&resource) {
                prop_assert_eq!(&wrapped, &resource);
            } else {
                let marker = format!("{name}%");
                prop_assert!(wrapped.contains(&marker));
            }
            prop_assert_eq!(ns.unwrap(&wrapped), resource.as_str());
        }
    }
}
