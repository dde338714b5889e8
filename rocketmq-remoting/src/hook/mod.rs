//! RPC hooks: code that sees every outgoing request (and its response) on its
//! way through, applied as a [`tower::Layer`]. [`AclHook`] signs requests for
//! brokers with ACL enabled (PROTOCOL.md §9).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::command::RemotingCommand;

pub mod acl;

pub use acl::{AclHook, Credentials};

/// Sees every outgoing request just before it is sent, and its response.
///
/// Requests the client answers (broker-initiated ones) do not pass through
/// hooks, and neither do the client's replies to them.
pub trait RpcHook: Send + Sync + 'static {
    /// Called with the destination address and the request, which the hook may
    /// change (e.g. add fields). Runs after every other header mutation.
    fn before_request(&self, addr: &str, cmd: &mut RemotingCommand);

    /// Called with the response of a two-way request. Does nothing by default.
    fn after_response(&self, addr: &str, response: &mut RemotingCommand) {
        let _ = (addr, response);
    }
}

/// Applies an [`RpcHook`] to every request of the wrapped service, which sends
/// to `addr`.
#[derive(Clone)]
pub struct RpcHookLayer {
    addr: Arc<str>,
    hook: Arc<dyn RpcHook>,
}

impl RpcHookLayer {
    /// A layer running `hook` for requests sent to `addr`.
    pub fn new(addr: impl Into<Arc<str>>, hook: Arc<dyn RpcHook>) -> Self {
        RpcHookLayer {
            addr: addr.into(),
            hook,
        }
    }
}

impl std::fmt::Debug for RpcHookLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcHookLayer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RpcHookLayer {
    type Service = RpcHookService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcHookService {
            inner,
            addr: Arc::clone(&self.addr),
            hook: Arc::clone(&self.hook),
        }
    }
}

/// The service made by [`RpcHookLayer`].
#[derive(Clone)]
pub struct RpcHookService<S> {
    inner: S,
    addr: Arc<str>,
    hook: Arc<dyn RpcHook>,
}

impl<S> std::fmt::Debug for RpcHookService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcHookService")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<S> Service<RemotingCommand> for RpcHookService<S>
where
    S: Service<RemotingCommand, Response = RemotingCommand>,
    S::Future: Send + 'static,
{
    type Response = RemotingCommand;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<RemotingCommand, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut cmd: RemotingCommand) -> Self::Future {
        self.hook.before_request(&self.addr, &mut cmd);
        let oneway = cmd.is_oneway();
        let response = self.inner.call(cmd);
        let addr = Arc::clone(&self.addr);
        let hook = Arc::clone(&self.hook);
        async move {
            let mut response = response.await?;
            if !oneway {
                hook.after_response(&addr, &mut response);
            }
            Ok(response)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rocketmq_model::{RequestCode, ResponseCode};
    use tower::ServiceExt;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<String>>,
    }

    impl RpcHook for Recorder {
        fn before_request(&self, addr: &str, cmd: &mut RemotingCommand) {
            cmd.ext_fields.insert("hooked", addr);
            self.seen.lock().unwrap().push(format!("before {addr}"));
        }

        fn after_response(&self, addr: &str, response: &mut RemotingCommand) {
            response.remark = Some("seen".into());
            self.seen.lock().unwrap().push(format!("after {addr}"));
        }
    }

    #[tokio::test]
    async fn hook_sees_request_and_response() {
        let hook = Arc::new(Recorder::default());
        let echo = tower::service_fn(|req: RemotingCommand| async move {
            assert_eq!(req.ext_fields.get("hooked"), Some("b:1"));
            Ok::<_, std::convert::Infallible>(RemotingCommand::response(
                ResponseCode::SUCCESS,
                req.opaque,
            ))
        });
        let svc = RpcHookLayer::new("b:1", hook.clone()).layer(echo);
        let response = svc
            .oneshot(RemotingCommand::request(RequestCode::HEART_BEAT))
            .await
            .unwrap();
        assert_eq!(response.remark.as_deref(), Some("seen"));
        assert_eq!(*hook.seen.lock().unwrap(), ["before b:1", "after b:1"]);
    }
}
