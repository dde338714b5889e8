//! Request-reply: requests waiting for their reply, by correlation id, and
//! the reply messages brokers push (PUSH_REPLY_MESSAGE_TO_CLIENT, PROTOCOL.md
//! §3.9) turned into messages.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_model::header::ReplyMessageRequestHeader;
use rocketmq_model::message::{DEFAULT_MAX_DECOMPRESSED_BODY, compression, property, sysflag};
use rocketmq_model::{Message, MessageExt, ModelError, Properties};
use tokio::sync::oneshot;

use super::lock;

/// Requests waiting for a reply, by correlation id.
#[derive(Debug, Default)]
pub(crate) struct ReplyWaiters {
    table: Mutex<HashMap<String, oneshot::Sender<MessageExt>>>,
}

impl ReplyWaiters {
    /// Waits for the reply with `correlation_id`; the entry goes when the
    /// returned waiter is dropped.
    pub(crate) fn expect(self: &Arc<Self>, correlation_id: &str) -> ReplyWaiter {
        let (tx, rx) = oneshot::channel();
        lock(&self.table).insert(correlation_id.to_owned(), tx);
        ReplyWaiter {
            waiters: Arc::clone(self),
            correlation_id: correlation_id.to_owned(),
            rx,
        }
    }

    /// Hands `reply` to its request; false when no request waits for it.
    pub(crate) fn deliver(&self, reply: MessageExt) -> bool {
        let Some(id) = reply.message.property(property::CORRELATION_ID) else {
            return false;
        };
        let waiter = lock(&self.table).remove(id);
        waiter.is_some_and(|tx| tx.send(reply).is_ok())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).len()
    }
}

/// One request's wait for its reply.
#[derive(Debug)]
pub(crate) struct ReplyWaiter {
    waiters: Arc<ReplyWaiters>,
    correlation_id: String,
    rx: oneshot::Receiver<MessageExt>,
}

impl ReplyWaiter {
    /// The reply, or `None` when none came within `timeout`.
    pub(crate) async fn wait(mut self, timeout: Duration) -> Option<MessageExt> {
        tokio::time::timeout(timeout, &mut self.rx).await.ok()?.ok()
    }
}

impl Drop for ReplyWaiter {
    fn drop(&mut self) {
        lock(&self.waiters.table).remove(&self.correlation_id);
    }
}

/// The reply message a PUSH_REPLY_MESSAGE_TO_CLIENT carries, its body
/// decompressed, with the time it arrived (ARRIVE_TIME, epoch ms, as Java's
/// `ClientRemotingProcessor#receiveReplyMessage` adds it).
pub(crate) fn reply_message(
    header: ReplyMessageRequestHeader,
    body: &[u8],
) -> Result<MessageExt, ModelError> {
    let mut sys_flag = header.sys_flag;
    let body = match sysflag::compression_type(sys_flag)? {
        Some(kind) => {
            sys_flag &= !sysflag::COMPRESSED_FLAG;
            compression::decompress(body, kind, DEFAULT_MAX_DECOMPRESSED_BODY)?
        }
        _ => bytes::Bytes::copy_from_slice(body),
    };
    let mut properties = Properties::parse(header.properties.as_deref().unwrap_or_default());
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    let arrived = now.map_or(0, |since| since.as_millis());
    properties.insert(property::ARRIVE_TIME, arrived.to_string())?;
    Ok(MessageExt {
        message: Message {
            topic: header.topic,
            body,
            flag: header.flag,
            properties,
        },
        queue_id: header.queue_id,
        sys_flag,
        born_timestamp: header.born_timestamp,
        born_host: socket_addr(&header.born_host),
        store_timestamp: header.store_timestamp,
        store_host: socket_addr(&header.store_host),
        reconsume_times: header.reconsume_times.unwrap_or(0),
        ..MessageExt::default()
    })
}

/// A host "ip:port" as a Java broker writes it (`getHostAddress() + ":" +
/// port`, so an IPv6 address comes without brackets), or as "[ip]:port";
/// 0.0.0.0:0 when it is neither.
fn socket_addr(text: &str) -> SocketAddr {
    let java = || {
        let (ip, port) = text.rsplit_once(':')?;
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    text.parse()
        .ok()
        .or_else(java)
        .unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(properties: &str, sys_flag: i32) -> ReplyMessageRequestHeader {
        ReplyMessageRequestHeader {
            producer_group: "replier".into(),
            topic: "DefaultCluster_REPLY_TOPIC".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 1,
            sys_flag,
            born_timestamp: 1_700_000_000_000,
            flag: 3,
            properties: Some(properties.into()),
            reconsume_times: None,
            unit_mode: false,
            born_host: "10.0.0.9:5000".into(),
            store_host: "10.0.0.1:10911".into(),
            store_timestamp: 1_700_000_000_001,
            broker_name: None,
        }
    }

    fn props(correlation_id: &str) -> String {
        let mut properties = Properties::new();
        properties
            .insert(property::CORRELATION_ID, correlation_id)
            .unwrap();
        properties.encode()
    }

    #[tokio::test]
    async fn a_reply_reaches_the_request_with_its_correlation_id() {
        let waiters = Arc::new(ReplyWaiters::default());
        let waiter = waiters.expect("c-1");
        let other = waiters.expect("c-2");
        let reply = reply_message(header(&props("c-1"), 0), b"pong").unwrap();
        assert_eq!(reply.born_host, "10.0.0.9:5000".parse().unwrap());
        assert_eq!(reply.message.flag, 3);
        let arrived = reply.message.property(property::ARRIVE_TIME).unwrap();
        assert!(arrived.parse::<u64>().unwrap() > 1_700_000_000_000);
        assert!(waiters.deliver(reply));
        let got = waiter.wait(Duration::from_secs(1)).await.unwrap();
        assert_eq!(&got.message.body[..], b"pong");
        assert_eq!(waiters.len(), 1, "the answered entry is gone");
        drop(other);
        assert_eq!(waiters.len(), 0, "a dropped waiter removes its entry");
        let late = reply_message(header(&props("c-2"), 0), b"late").unwrap();
        assert!(!waiters.deliver(late));
    }

    #[test]
    fn hosts_are_read_as_java_writes_them_ipv6_too() {
        for (text, addr) in [
            ("10.0.0.9:5000", "10.0.0.9:5000"),
            ("0:0:0:0:0:0:0:1:5000", "[::1]:5000"),
            ("fe80:0:0:0:0:0:0:7:10911", "[fe80::7]:10911"),
            ("[::1]:5000", "[::1]:5000"),
            ("nonsense", "0.0.0.0:0"),
        ] {
            assert_eq!(socket_addr(text), addr.parse().unwrap(), "{text}");
        }
    }

    #[test]
    fn compressed_reply_bodies_are_inflated() {
        let body =
            compression::compress(b"zipped reply", compression::CompressionType::Zlib, 5).unwrap();
        let flag = sysflag::with_compression(0, compression::CompressionType::Zlib);
        let reply = reply_message(header(&props("c"), flag), &body).unwrap();
        assert_eq!(&reply.message.body[..], b"zipped reply");
        assert!(!sysflag::has(reply.sys_flag, sysflag::COMPRESSED_FLAG));
    }

    #[tokio::test(start_paused = true)]
    async fn no_reply_in_time_is_none() {
        let waiters = Arc::new(ReplyWaiters::default());
        let waiter = waiters.expect("c");
        assert!(waiter.wait(Duration::from_secs(2)).await.is_none());
        assert_eq!(waiters.len(), 0);
    }
}
