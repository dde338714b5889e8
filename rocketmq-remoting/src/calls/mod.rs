//! One typed [`Call`](crate::call::Call) per request a client sends to a broker
//! or name server (PROTOCOL.md §3), grouped by concern.
//!
//! Each call wraps the request's typed header (and body) from `rocketmq_model`
//! and reads the answer into a typed result; run them with
//! [`execute`](crate::call::execute). Calls that may also go oneway are sent
//! wrapped in [`Oneway`](crate::call::Oneway).

mod admin;
mod assignment;
mod client;
mod consume;
mod offset;
mod pop;
mod pull;
mod recall;
mod route;
mod send;
mod transaction;

pub use admin::{CreateTopic, GetConsumeStats, QueryMessage, QueryMessageResponse, ViewMessage};
pub use assignment::{QueryAssignment, SetMessageRequestMode};
pub use client::{CheckClientConfig, GetConsumerList, Heartbeat, Unregister};
pub use consume::{ConsumerSendMsgBack, LockBatchMq, UnlockBatchMq};
pub use offset::{
    GetEarliestMsgStoreTime, GetMaxOffset, GetMinOffset, QueryConsumerOffset, SearchOffset,
    UpdateConsumerOffset,
};
pub use pop::{
    AckMessage, BatchAckMessage, ChangeInvisibleTime, PopMessage, PopResponse, PopStatus,
};
pub use pull::{PullMessage, PullResponse, PullStatus};
pub use recall::RecallMessage;
pub use route::{GetClusterInfo, GetRouteInfo};
pub use send::{SendBatch, SendHeaderKeys, SendMessage, SendResponse, SendStatus};
pub use transaction::EndTransaction;

/// Fakes shared by the calls' tests.
#[cfg(test)]
mod test_support {
    use std::sync::{Arc, Mutex};

    use rocketmq_model::ResponseCode;
    use tower::Service;

    use crate::command::RemotingCommand;
    use crate::error::{RemotingError, Result};

    /// A response with `code` and no header.
    pub(crate) fn answer(code: ResponseCode) -> RemotingCommand {
        RemotingCommand::response(code, 1)
    }

    /// A response with `code` and these extFields.
    pub(crate) fn answer_with(code: ResponseCode, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut response = answer(code);
        for (key, value) in fields {
            response
                .ext_fields
                .insert((*key).to_owned(), (*value).to_owned());
        }
        response
    }

    /// The request's extFields, sorted by key.
    pub(crate) fn sent_fields(cmd: &RemotingCommand) -> Vec<(&str, &str)> {
        let mut fields: Vec<_> = cmd.ext_fields.iter().collect();
        fields.sort_unstable();
        fields
    }

    /// Asserts that a call was rejected with `code`.
    #[track_caller]
    pub(crate) fn assert_rejected<T: std::fmt::Debug>(result: Result<T>, code: ResponseCode) {
        match result {
            Err(RemotingError::Response { code: got, .. }) => assert_eq!(got, code),
            other => panic!("expected a {code} rejection, got {other:?}"),
        }
    }

    /// The requests a fake peer received.
    #[derive(Clone, Default)]
    pub(crate) struct Sent(Arc<Mutex<Vec<RemotingCommand>>>);

    impl Sent {
        /// The last request received.
        pub(crate) fn last(&self) -> RemotingCommand {
            self.0
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("no request was sent")
        }
    }

    /// A fake peer that records every request and answers `response` to each,
    /// with the request's opaque.
    pub(crate) fn peer(
        response: RemotingCommand,
    ) -> (
        impl Service<RemotingCommand, Response = RemotingCommand, Error = RemotingError>,
        Sent,
    ) {
        let sent = Sent::default();
        let log = sent.clone();
        let svc = tower::service_fn(move |request: RemotingCommand| {
            let mut response = response.clone();
            response.opaque = request.opaque;
            log.0.lock().unwrap().push(request);
            async move { Ok::<_, RemotingError>(response) }
        });
        (svc, sent)
    }
}
