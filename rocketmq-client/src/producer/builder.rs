//! [`ProducerBuilder`] and [`ProducerOptions`]: the producer's settings with
//! the defaults of Java's `DefaultMQProducer`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::ResponseCode;
use rocketmq_model::message::compression::{CompressionType, DEFAULT_LEVEL};
use rocketmq_model::route::DEFAULT_TOPIC_QUEUE_NUMS;
use rocketmq_remoting::{Credentials, Transport};

use super::{Producer, SendHook};
use crate::config::ClientConfig;
use crate::error::Result;

/// Java's default producer group.
pub const DEFAULT_PRODUCER_GROUP: &str = "DEFAULT_PRODUCER";

/// Settings of a producer (Java `DefaultMQProducer` names in snake_case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerOptions {
    /// The producer group. Its default, `DEFAULT_PRODUCER`, is refused at
    /// build, as Java does: name the group.
    pub producer_group: String,
    /// The budget of one send, retries included (3 s).
    pub send_msg_timeout: Duration,
    /// Extra attempts of a synchronous send on another broker after a
    /// retriable failure (2).
    pub retry_times_when_send_failed: u32,
    /// Extra attempts of an asynchronous send (2).
    pub retry_times_when_send_async_failed: u32,
    /// Bodies of at least this many bytes are compressed (4096), and sent
    /// compressed when that makes them smaller.
    pub compress_msg_body_over_howmuch: usize,
    /// The zlib level of compressed bodies (5).
    pub compress_level: u32,
    /// How bodies are compressed (ZLIB, Java's default and the only type a
    /// 4.x consumer reads; LZ4 and ZSTD need 5.x consumers).
    pub compress_type: CompressionType,
    /// The largest body (or encoded batch) accepted, in bytes (4 MiB).
    pub max_message_size: usize,
    /// Queue count of topics auto-created through `TBW102` (4).
    pub default_topic_queue_nums: i32,
    /// Latency fault avoidance: isolate slow and failing brokers (false).
    pub send_latency_fault_enable: bool,
    /// Retry on another broker when a synchronous send was stored with a
    /// status other than SEND_OK (false).
    pub retry_another_broker_when_not_store_ok: bool,
    /// The broker answers after which a synchronous send is resent to
    /// another broker (Java's `retryResponseCodes`, which
    /// `addRetryResponseCode` extends): at first
    /// [`ResponseCode::SEND_RETRY_CODES`], SYSTEM_BUSY and NO_PERMISSION
    /// among them. Other answers end the send with their error. Async sends
    /// and requests are never resent after an answer but GO_AWAY (the
    /// broker did not process it), which every send is resent after.
    pub retry_response_codes: Vec<ResponseCode>,
    /// Asynchronous sends in flight at once; more wait for a slot (10000;
    /// Java's `backPressureForAsyncSendNum`, 1024 in recent releases, which
    /// bounds them only with `enableBackpressureForAsyncMode`).
    pub max_in_flight_async_sends: usize,
    /// Body bytes (as given, before compression) of the asynchronous sends
    /// in flight at once; more wait (Java's `backPressureForAsyncSendSize`,
    /// 100 MiB, at least 1 MiB). A body larger than this goes alone.
    pub max_in_flight_async_bytes: usize,
    /// Automatic batching (Java 5.x's `autoBatch`, false): `send`,
    /// `send_async`, `send_to_queue`, `send_async_to_queue` and the sends
    /// through a selector (which chooses the queue first) of one topic
    /// (and queue, and WAIT) within `batch_max_delay` of each other go as one
    /// SEND_BATCH_MESSAGE, each caller getting its own message's result. A
    /// send then waits up to `batch_max_delay` for its batch: worth it with
    /// many sends in flight at once, while a few sync senders in a loop
    /// get about `senders / batch_max_delay` messages a second (the soak
    /// with 8 senders: 11 s for 100,000 messages alone, 155 s batched). Not batched:
    /// delayed, transactional and reply messages, retry topics, messages
    /// with a sharding key (unless sent to a chosen queue), one too big for a
    /// batch (sent alone, compressed if that helps), one whose properties
    /// pass the 32,767 bytes a batch entry can carry, and any while
    /// `total_batch_max_bytes` are held. Send hooks and traces see the
    /// batch; when it fails, each of its messages fails with
    /// [`ClientError::BatchFailed`](crate::ClientError::BatchFailed). A
    /// message in a batch goes with it even when its caller stops waiting.
    pub auto_batch: bool,
    /// How long a batch waits for more messages (Java's `batchMaxDelayMs`,
    /// 10 ms; 1 ms to 30 s).
    pub batch_max_delay: Duration,
    /// A batch goes once it is this big, encoded (Java's `batchMaxBytes`,
    /// 32 KiB; 1 B to 2 MiB, and never above `max_message_size`).
    pub batch_max_bytes: usize,
    /// Bytes all open batches may hold; past them messages are sent alone
    /// (Java's `totalBatchMaxBytes`, 32 MiB).
    pub total_batch_max_bytes: usize,
    /// Message traces (Java's `enableTrace`, false): every message sent,
    /// and every transaction ended, is recorded in `trace_topic`.
    pub enable_trace: bool,
    /// Where message traces go (`RMQ_SYS_TRACE_TOPIC`).
    pub trace_topic: String,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            producer_group: DEFAULT_PRODUCER_GROUP.to_owned(),
            send_msg_timeout: Duration::from_secs(3),
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            compress_msg_body_over_howmuch: 4096,
            compress_level: DEFAULT_LEVEL,
            compress_type: CompressionType::Zlib,
            max_message_size: 4 * 1024 * 1024,
            default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
            send_latency_fault_enable: false,
            retry_another_broker_when_not_store_ok: false,
            retry_response_codes: ResponseCode::SEND_RETRY_CODES.to_vec(),
            max_in_flight_async_sends: 10_000,
            max_in_flight_async_bytes: 100 * 1024 * 1024,
            auto_batch: false,
            batch_max_delay: Duration::from_millis(10),
            batch_max_bytes: 32 * 1024,
            total_batch_max_bytes: 32 * 1024 * 1024,
            enable_trace: false,
            trace_topic: crate::trace::TRACE_TOPIC.to_owned(),
        }
    }
}

/// Builds a started [`Producer`].
///
/// ```no_run
/// use std::time::Duration;
/// use rocketmq_client::Producer;
/// use rocketmq_model::Message;
///
/// # async fn run() -> rocketmq_client::Result<()> {
/// let producer = Producer::builder()
///     .namesrv_addr("127.0.0.1:9876")
///     .producer_group("orders-producer")
///     .send_msg_timeout(Duration::from_secs(5))
///     .build()
///     .await?;
/// let msg = Message::builder("orders").body("created").tags("new").build()?;
/// let result = producer.send(msg).await?;
/// println!("stored as {}", result.msg_id);
/// producer.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct ProducerBuilder {
    pub(crate) options: ProducerOptions,
    pub(crate) config: ClientConfig,
    pub(crate) hooks: Vec<Arc<dyn SendHook>>,
}

impl fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("options", &self.options)
            .field("config", &self.config)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl ProducerBuilder {
    /// Adds a nameserver address ("host:port"; several may be given, or a
    /// Java-style "a;b" list).
    pub fn namesrv_addr(mut self, addr: impl AsRef<str>) -> Self {
        let addrs = crate::config::split_namesrv_addrs([addr.as_ref().to_owned()]);
        self.config.namesrv_addrs.extend(addrs);
        self
    }

    /// Every client setting at once (nameservers, instance name, intervals,
    /// transport, ...). It replaces what `namesrv_addr`, `instance_name` and
    /// the other client setters gave before it, so call it first.
    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// The instance name in the client id; producers with the same client id
    /// share one client instance.
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.config.instance_name = name.into();
        self
    }

    /// How to reach brokers and nameservers (e.g. the testkit's in-memory
    /// network); TCP by default.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.config.transport = Some(transport);
        self
    }

    /// Signs every request with ACL credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.config.credentials = Some(credentials);
        self
    }

    /// The namespace of the producer's group and topics
    /// ([`ClientConfig::namespace`]): they are named here, and in the
    /// messages sent, without it.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = Some(namespace.into());
        self
    }

    /// Every producer setting at once.
    pub fn options(mut self, options: ProducerOptions) -> Self {
        self.options = options;
        self
    }

    /// The producer group.
    pub fn producer_group(mut self, group: impl Into<String>) -> Self {
        self.options.producer_group = group.into();
        self
    }

    /// The budget of one send, retries included.
    pub fn send_msg_timeout(mut self, timeout: Duration) -> Self {
        self.options.send_msg_timeout = timeout;
        self
    }

    /// Extra attempts of a synchronous send.
    pub fn retry_times_when_send_failed(mut self, times: u32) -> Self {
        self.options.retry_times_when_send_failed = times;
        self
    }

    /// Extra attempts of an asynchronous send.
    pub fn retry_times_when_send_async_failed(mut self, times: u32) -> Self {
        self.options.retry_times_when_send_async_failed = times;
        self
    }

    /// Bodies of at least this many bytes are compressed (and sent compressed
    /// when that makes them smaller).
    pub fn compress_msg_body_over_howmuch(mut self, bytes: usize) -> Self {
        self.options.compress_msg_body_over_howmuch = bytes;
        self
    }

    /// The zlib level (0–9) of compressed bodies.
    pub fn compress_level(mut self, level: u32) -> Self {
        self.options.compress_level = level;
        self
    }

    /// How bodies are compressed (default ZLIB; Java 5.x's `compressType`).
    /// LZ4 and ZSTD bodies are read by 5.x consumers (and this client's) only.
    pub fn compress_type(mut self, kind: CompressionType) -> Self {
        self.options.compress_type = kind;
        self
    }

    /// The largest body accepted, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.options.max_message_size = bytes;
        self
    }

    /// Queue count of topics auto-created through `TBW102`.
    pub fn default_topic_queue_nums(mut self, nums: i32) -> Self {
        self.options.default_topic_queue_nums = nums;
        self
    }

    /// Turns latency fault avoidance on or off.
    pub fn send_latency_fault_enable(mut self, enable: bool) -> Self {
        self.options.send_latency_fault_enable = enable;
        self
    }

    /// Retry on another broker when a message was stored without SEND_OK.
    pub fn retry_another_broker_when_not_store_ok(mut self, retry: bool) -> Self {
        self.options.retry_another_broker_when_not_store_ok = retry;
        self
    }

    /// Resends a synchronous send to another broker after `code` too
    /// (Java's `addRetryResponseCode`), e.g. a code of a broker of one's
    /// own that means "try elsewhere".
    pub fn retry_response_code(mut self, code: ResponseCode) -> Self {
        if !self.options.retry_response_codes.contains(&code) {
            self.options.retry_response_codes.push(code);
        }
        self
    }

    /// Asynchronous sends in flight at once.
    pub fn max_in_flight_async_sends(mut self, sends: usize) -> Self {
        self.options.max_in_flight_async_sends = sends;
        self
    }

    /// Body bytes of the asynchronous sends in flight at once (100 MiB;
    /// at least 1 MiB, as in Java); a body larger than this goes alone.
    pub fn max_in_flight_async_bytes(mut self, bytes: usize) -> Self {
        self.options.max_in_flight_async_bytes = bytes;
        self
    }

    /// Batches sends automatically (Java 5.x's `setAutoBatch`); see
    /// [`ProducerOptions::auto_batch`].
    pub fn auto_batch(mut self, enabled: bool) -> Self {
        self.options.auto_batch = enabled;
        self
    }

    /// How long an automatic batch waits for more messages (10 ms; 1 ms to
    /// 30 s; Java's `batchMaxDelayMs`).
    pub fn batch_max_delay(mut self, delay: Duration) -> Self {
        self.options.batch_max_delay = delay;
        self
    }

    /// The size, encoded, at which an automatic batch goes (32 KiB; 1 B to
    /// 2 MiB; Java's `batchMaxBytes`).
    pub fn batch_max_bytes(mut self, bytes: usize) -> Self {
        self.options.batch_max_bytes = bytes;
        self
    }

    /// The bytes all open automatic batches may hold (32 MiB; Java's
    /// `totalBatchMaxBytes`).
    pub fn total_batch_max_bytes(mut self, bytes: usize) -> Self {
        self.options.total_batch_max_bytes = bytes;
        self
    }

    /// Records message traces (Java's `enableMsgTrace`) in the default
    /// trace topic, `RMQ_SYS_TRACE_TOPIC`, which the brokers must have
    /// (Java's broker setting `traceTopicEnable`; a Java 5.1+ broker refuses
    /// to create it through the admin call, as a system topic). A topic of
    /// one's own is [`trace_topic`](Self::trace_topic).
    pub fn enable_trace(mut self, enable: bool) -> Self {
        self.options.enable_trace = enable;
        self
    }

    /// Records message traces in `topic` (Java's `customizedTraceTopic`).
    pub fn trace_topic(mut self, topic: impl Into<String>) -> Self {
        self.options.enable_trace = true;
        self.options.trace_topic = topic.into();
        self
    }

    /// Adds a hook called around every send attempt.
    pub fn send_hook(mut self, hook: impl SendHook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Starts the producer: joins (or starts) the client instance of its
    /// client id, registers its group and sends a first heartbeat.
    pub async fn build(self) -> Result<Producer> {
        Producer::start(self).await
    }
}
