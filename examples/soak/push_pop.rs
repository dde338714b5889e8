//! Push consumers in pop mode (`--push-pop`): the group's members are push
//! consumers that leave rebalancing to the brokers
//! (`client_rebalance(false)`), and before any starts the group is
//! switched to pop mode on the soak topic with a share of 0, so that every
//! member pops every broker's queue -1. Popped messages stay invisible for
//! [`INVISIBLE`]; the kernel acknowledges each once the listener has it.
//!
//! The brokers keep no client offsets and move no queues, so a message
//! comes back only when its acknowledgement did not land. Each way that
//! happens is told to the ledger as a release of the very messages it
//! concerns ([`Ledger::released`]), which is what explains such a
//! redelivery:
//!
//! - the kernel could not acknowledge a consumed message (its broker is
//!   stopped, or the connection to it died with the call in flight) or
//!   hide or dead-letter it: it warns, naming the message's receipt handle;
//!   [`KernelWarnings`] sees the warning and releases the message whose
//!   handle it is;
//! - a message reached the listener less than [`LATE_MARGIN`] before its
//!   invisible time ended (it waited in the client): the broker may revive
//!   it before the acknowledgement lands, or have revived it already;
//! - a leaving member did not settle everything within its drain timeout
//!   (its shutdown report counts what it left): what its listener got from
//!   [`SETTLE_BUDGET`] before its shutdown began on may be unacknowledged.
//!
//! What a member popped but never handed to its listener (a pop whose
//! answer was lost to a leave or a broker stop, a drain cut short) comes
//! back as a first delivery: no duplicate.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, MessageRequestMode, ShutdownReport,
};
use rocketmq_client::{ClientConfig, Producer, PushConsumer};
use rocketmq_model::message::ReceiptHandle;
use rocketmq_model::time::epoch_millis;
use rocketmq_model::{MessageExt, property};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::ledger::Ledger;

/// How long a popped message stays invisible to the rest of the group
/// (`pop_invisible_time`; Java's default is 60 s): short, so that what
/// was not acknowledged comes back within the run.
pub(crate) const INVISIBLE: Duration = Duration::from_secs(10);
/// A message that reaches the listener later than this before its
/// invisible time ends may be revived before its acknowledgement lands.
const LATE_MARGIN: Duration = Duration::from_secs(1);
/// How long before a leaving member's shutdown began a message its
/// listener got may still be unacknowledged (a request timeout, 3 s, and
/// some).
const SETTLE_BUDGET: Duration = Duration::from_secs(5);
/// How long the receipt handle of a consumed message is kept to match the
/// kernel's warnings against: a failed acknowledgement fails within a
/// request timeout of the listener's return.
const HANDLES_KEPT: Duration = Duration::from_secs(60);

/// The group's members pop from now on: pop mode with share 0 on every
/// broker of `topic` (the members follow at their first rebalance).
pub(crate) async fn switch_to_pop(
    producer: &Producer,
    topic: &str,
    group: &str,
) -> rocketmq_client::Result<()> {
    producer
        .admin()
        .set_message_request_mode(topic, group, MessageRequestMode::Pop, 0)
        .await
}

/// Starts member `name`: a push consumer of `group` on `topic` that leaves
/// rebalancing to the brokers, its listener recording into `books`.
pub(crate) async fn start(
    name: String,
    group: String,
    topic: String,
    config: ClientConfig,
    books: Arc<PushPopBooks>,
) -> rocketmq_client::Result<PushConsumer> {
    PushConsumer::builder(group, config)
        .subscribe(topic, "*")
        .client_rebalance(false)
        .pop_invisible_time(INVISIBLE)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let books = Arc::clone(&books);
            let name = name.clone();
            async move {
                books.consumed(&name, &msgs);
                ConcurrentResult::Success
            }
        })
        .build()
        .await
}

/// What the push pop members' listeners got, on top of the ledger's books.
#[derive(Debug, Default)]
struct Counters {
    kernel_releases: AtomicU64,
    unknown_handles: AtomicU64,
    late: AtomicU64,
    unsettled_leaves: AtomicU64,
    unsettled_released: AtomicU64,
    without_handle: AtomicU64,
}

/// [`Counters`] at the end of a run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PushPopFigures {
    /// Messages released because the kernel warned that their
    /// acknowledgement (or retry, or dead-lettering) failed.
    pub(crate) kernel_releases: u64,
    /// Such warnings naming a handle no listener was given.
    pub(crate) unknown_handles: u64,
    /// Messages that reached a listener near or past their invisible time.
    pub(crate) late: u64,
    /// Leaving members whose shutdown left messages unsettled.
    pub(crate) unsettled_leaves: u64,
    /// Messages released for those.
    pub(crate) unsettled_released: u64,
    /// Messages a listener got without a receipt handle (pulled, not
    /// popped).
    pub(crate) without_handle: u64,
    /// Released messages not delivered again (a failed acknowledgement
    /// may have reached the broker).
    pub(crate) released_not_returned: u64,
}

/// The push pop members' books: the ledger, and the receipt handles of
/// what the listeners got, to match the kernel's warnings against.
#[derive(Debug)]
pub(crate) struct PushPopBooks {
    ledger: Arc<Ledger>,
    handles: Mutex<Handles>,
    counters: Counters,
}

/// Receipt handles (as the kernel prints them) of recently consumed
/// messages, with their UNIQ_KEYs.
#[derive(Debug, Default)]
struct Handles {
    ids: HashMap<String, String>,
    order: VecDeque<(Instant, String)>,
}

impl Handles {
    fn remember(&mut self, handle: String, id: String, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < HANDLES_KEPT {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back((now, handle.clone()));
        self.ids.insert(handle, id);
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl PushPopBooks {
    /// Books over `ledger`.
    pub(crate) fn new(ledger: Arc<Ledger>) -> Self {
        PushPopBooks {
            ledger,
            handles: Mutex::default(),
            counters: Counters::default(),
        }
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counts so far; `released_not_returned` from the ledger.
    pub(crate) fn figures(&self) -> PushPopFigures {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let c = &self.counters;
        PushPopFigures {
            kernel_releases: get(&c.kernel_releases),
            unknown_handles: get(&c.unknown_handles),
            late: get(&c.late),
            unsettled_leaves: get(&c.unsettled_leaves),
            unsettled_released: get(&c.unsettled_released),
            without_handle: get(&c.without_handle),
            released_not_returned: self.ledger.unreturned(None),
        }
    }

    /// Member `consumer`'s listener got `msgs`: records each with the pop
    /// time of its receipt handle (`POP_CK`), keeps the handle, and
    /// releases those that came late.
    fn consumed(&self, consumer: &str, msgs: &[MessageExt]) {
        let now_ms = epoch_millis(SystemTime::now());
        let margin = i64::try_from(LATE_MARGIN.as_millis()).unwrap_or(i64::MAX);
        let mut popped = Vec::with_capacity(msgs.len());
        let mut pulled = Vec::new();
        let mut late = Vec::new();
        {
            let mut handles = self.handles();
            let now = Instant::now();
            for msg in msgs {
                let handle = msg.property(property::POP_CK);
                match handle.and_then(|ck| ReceiptHandle::parse(ck).ok()) {
                    Some(handle) => {
                        let id = msg.msg_id().into_owned();
                        if now_ms.saturating_add(margin) >= handle.visible_at_ms() {
                            late.push(id.clone());
                        }
                        popped.push((msg, handle.pop_time));
                        handles.remember(handle.to_string(), id, now);
                    }
                    None => pulled.push(msg.clone()),
                }
            }
        }
        add(&self.counters.late, late.len());
        let what = if late.is_empty() {
            String::new()
        } else {
            format!("{consumer} got messages near their invisible time's end")
        };
        self.ledger.received_releasing(consumer, popped, what, late);
        if !pulled.is_empty() {
            add(&self.counters.without_handle, pulled.len());
            self.ledger.delivered(consumer, &pulled);
        }
    }

    /// The kernel warned that `what` failed for the message `handle`
    /// names: it comes back when its invisible time ends.
    fn kernel_warning(&self, what: &str, handle: &str) {
        let id = self.handles().ids.get(handle).cloned();
        let Some(id) = id else {
            add(&self.counters.unknown_handles, 1);
            return;
        };
        add(&self.counters.kernel_releases, 1);
        let broker = ReceiptHandle::parse(handle).map_or_else(|_| "?".into(), |h| h.broker_name);
        let what = what.split(';').next().unwrap_or(what);
        self.ledger
            .released(format!("kernel: {what} ({broker})"), [id]);
    }

    /// Member `consumer`, whose shutdown began at `since` (ledger time),
    /// reported `report`: if it left messages unsettled, what its listener
    /// got from [`SETTLE_BUDGET`] before then on is released.
    pub(crate) fn left(&self, consumer: &str, since: Duration, report: &ShutdownReport) {
        if report.messages_left == 0 && report.batches_left == 0 {
            return;
        }
        let ids = self
            .ledger
            .delivered_since(consumer, since.saturating_sub(SETTLE_BUDGET));
        add(&self.counters.unsettled_leaves, 1);
        add(&self.counters.unsettled_released, ids.len());
        let what = format!(
            "{consumer} left {} messages unsettled ({} batches)",
            report.messages_left, report.batches_left
        );
        self.ledger.released(what, ids);
    }
}

/// Where the kernel's warnings that name a receipt handle go: to the books
/// of a push pop run while one is attached. Its [`layer`](Self::layer) is
/// part of the soak's tracing subscriber, whatever `RUST_LOG` says.
#[derive(Debug, Default)]
pub(crate) struct KernelWarnings {
    books: Mutex<Option<Arc<PushPopBooks>>>,
}

impl KernelWarnings {
    /// The tracing layer that sees the kernel's warnings.
    pub(crate) fn layer<S>(self: &Arc<Self>) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let kernel = Targets::new().with_target("rocketmq_kernel", Level::WARN);
        WarningLayer(Arc::clone(self)).with_filter(kernel)
    }

    /// Sends the warnings to `books` from now on (`None`: nowhere).
    pub(crate) fn attach(&self, books: Option<Arc<PushPopBooks>>) {
        *self.books.lock().unwrap_or_else(PoisonError::into_inner) = books;
    }

    fn books(&self) -> Option<Arc<PushPopBooks>> {
        (self.books.lock().unwrap_or_else(PoisonError::into_inner)).clone()
    }
}

struct WarningLayer(Arc<KernelWarnings>);

impl<S: Subscriber> Layer<S> for WarningLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(handle), Some(books)) = (fields.handle, self.0.books()) {
            books.kernel_warning(&fields.message, &handle);
        }
    }
}

/// The fields of a warning the soak reads.
#[derive(Default)]
struct Fields {
    handle: Option<String>,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "handle" => self.handle = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Attribution;
    use tracing_subscriber::layer::SubscriberExt;

    fn message(id: &str, pop_ck: Option<String>) -> MessageExt {
        let mut msg = MessageExt::default();
        let props = &mut msg.message.properties;
        props.insert(property::UNIQ_KEY, id).ok();
        if let Some(pop_ck) = pop_ck {
            props.insert(property::POP_CK, pop_ck).ok();
        }
        msg
    }

    #[test]
    fn the_listener_keeps_handles_and_releases_what_came_late() {
        let ledger = Arc::new(Ledger::new(Attribution::Releases {
            invisible: INVISIBLE,
        }));
        let books = PushPopBooks::new(Arc::clone(&ledger));
        let now = epoch_millis(SystemTime::now());
        let handle = |popped_ago: i64, offset: i64| {
            format!("0 {} 10000 1 0 broker-a 0 {offset}", now - popped_ago)
        };
        let msgs = [
            message("fresh", Some(handle(100, 1))),
            message("late", Some(handle(9_500, 2))),
            message("pulled", None),
        ];
        books.consumed("c1", &msgs);
        let figures = books.figures();
        assert_eq!((figures.late, figures.without_handle), (1, 1));
        assert_eq!(ledger.unreturned(None), 1, "the late one is released");
        assert_eq!(books.handles().ids.len(), 2);
        assert_eq!(ledger.delivery_count(), 3);
        // A clean leave releases nothing; one that left batches, what its
        // listener got since shortly before it began.
        books.left("c1", Duration::ZERO, &ShutdownReport::default());
        assert_eq!(ledger.unreturned(None), 1);
        let mut unsettled = ShutdownReport::default();
        unsettled.batches_left = 1;
        unsettled.messages_left = 1;
        books.left("c1", Duration::ZERO, &unsettled);
        assert_eq!(ledger.unreturned(None), 3);
        assert_eq!(books.figures().unsettled_released, 3);
    }

    #[test]
    fn a_kernel_warning_naming_a_consumed_handle_releases_that_message() {
        let ledger = Arc::new(Ledger::new(Attribution::Releases {
            invisible: INVISIBLE,
        }));
        let books = Arc::new(PushPopBooks::new(Arc::clone(&ledger)));
        let handle = "0 1700000000000 10000 1 0 broker-b 3 7";
        books
            .handles()
            .remember(handle.into(), "ID1".into(), Instant::now());
        let warnings = Arc::new(KernelWarnings::default());
        warnings.attach(Some(Arc::clone(&books)));
        let subscriber = tracing_subscriber::registry().with(warnings.layer());
        tracing::subscriber::with_default(subscriber, || {
            let handle = ReceiptHandle::parse(handle).ok();
            let handle = handle.map(|h| h.to_string()).unwrap_or_default();
            tracing::warn!(target: "rocketmq_kernel::pop::settle", topic = "T", handle = %handle,
                error = "connection refused", "{} failed; the message comes back", "acknowledging");
            tracing::warn!(target: "rocketmq_kernel::pop::settle", handle = %"1 2 3 4 0 b 0 0", "x failed");
            tracing::warn!(target: "rocketmq_client", handle = %handle, "not the kernel's");
        });
        let figures = books.figures();
        assert_eq!(figures.kernel_releases, 1);
        assert_eq!(figures.unknown_handles, 1);
        assert_eq!(ledger.unreturned(None), 1);
        let faults = ledger.faults();
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].what, "kernel: acknowledging failed (broker-b)");
    }
}
