//! Typed calls: a request that names its response type (STYLE.md §1).
//!
//! A [`Call`] knows how to become a [`RemotingCommand`] (code, header, body) and
//! how to read the peer's answer into a typed result, so no caller ever builds a
//! command, matches response codes and decodes a header by hand. [`execute`]
//! runs any call over any `tower::Service` that carries remoting commands; the
//! concrete calls of the protocol live in [`crate::calls`].
//!
//! The `parse_*` helpers below cover the common response shapes ("SUCCESS with
//! a typed header", "SUCCESS with a body", "SUCCESS, nothing"); every other code
//! becomes [`RemotingError::Response`] with the peer's code and remark.

use bytes::Bytes;
use rocketmq_model::body::JsonBody;
use rocketmq_model::{CommandHeader, ResponseCode};
use tower::{Service, ServiceExt};

use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};

/// A typed request: what to send and how to read the answer.
pub trait Call {
    /// What a successful answer reads as.
    type Response;

    /// Whether the request is oneway: the peer never answers, and the call is
    /// done once the frame is queued for writing.
    const ONEWAY: bool = false;

    /// The request to send: code, header fields and body. [`execute`] assigns
    /// the opaque and, for oneway calls, sets the oneway flag. Fails only when a
    /// body cannot be encoded.
    fn into_command(self) -> Result<RemotingCommand>;

    /// Reads the peer's answer. A code the call does not accept is an error
    /// ([`rejected`]).
    fn parse_response(response: RemotingCommand) -> Result<Self::Response>;
}

/// Sends a call without waiting for an answer (oneway, PROTOCOL.md §2.5).
///
/// The connection resolves a oneway request as soon as its frame is queued, with
/// a synthetic `SUCCESS`; whatever it resolves with reads as `()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oneway<C>(pub C);

impl<C: Call> Call for Oneway<C> {
    type Response = ();
    const ONEWAY: bool = true;

    fn into_command(self) -> Result<RemotingCommand> {
        let mut cmd = self.0.into_command()?;
        cmd.set_oneway();
        Ok(cmd)
    }

    fn parse_response(_response: RemotingCommand) -> Result<()> {
        Ok(())
    }
}

/// Runs `call` over `svc` (waits for readiness, sends, reads the answer).
///
/// Errors for rejected codes carry an empty address; use [`execute_at`] when the
/// peer's address is known.
pub async fn execute<S, C>(svc: &mut S, call: C) -> Result<C::Response>
where
    S: Service<RemotingCommand, Response = RemotingCommand, Error = RemotingError>,
    C: Call,
{
    let mut request = call.into_command()?;
    if C::ONEWAY {
        request.set_oneway();
    }
    let response = svc.ready().await?.call(request).await?;
    C::parse_response(response)
}

/// Like [`execute`], naming the peer's address in a rejected-code error.
pub async fn execute_at<S, C>(svc: &mut S, addr: &str, call: C) -> Result<C::Response>
where
    S: Service<RemotingCommand, Response = RemotingCommand, Error = RemotingError>,
    C: Call,
{
    execute(svc, call)
        .await
        .map_err(|err| naming_peer(err, addr))
}

/// `err`, with `addr` filled in if it is a rejected code without an address
/// ([`rejected`] leaves it empty: a call does not know where it went).
pub(crate) fn naming_peer(err: RemotingError, addr: &str) -> RemotingError {
    match err {
        RemotingError::Response {
            addr: known,
            code,
            remark,
        } if known.is_empty() => RemotingError::Response {
            addr: addr.to_owned(),
            code,
            remark,
        },
        other => other,
    }
}

/// The error for an answer with a code the call does not accept: its code and
/// remark, no address (see [`execute_at`]).
pub fn rejected(response: &RemotingCommand) -> RemotingError {
    RemotingError::Response {
        addr: String::new(),
        code: response.response_code(),
        remark: response.remark.clone().unwrap_or_default(),
    }
}

/// Passes the answer through if its code is one of `accepted`, else
/// [`rejected`].
pub fn expect_codes(
    response: RemotingCommand,
    accepted: &[ResponseCode],
) -> Result<RemotingCommand> {
    if accepted.contains(&response.response_code()) {
        Ok(response)
    } else {
        Err(rejected(&response))
    }
}

/// Passes the answer through if it is `SUCCESS`, else [`rejected`].
pub fn expect_success(response: RemotingCommand) -> Result<RemotingCommand> {
    expect_codes(response, &[ResponseCode::SUCCESS])
}

/// "SUCCESS, nothing": any `SUCCESS` answer is `()`.
pub fn parse_success(response: RemotingCommand) -> Result<()> {
    expect_success(response).map(drop)
}

/// "SUCCESS with a typed response header".
pub fn parse_success_header<H: CommandHeader>(response: RemotingCommand) -> Result<H> {
    Ok(expect_success(response)?.decode_header()?)
}

/// "SUCCESS with a body": the raw body (possibly empty).
pub fn parse_success_body(response: RemotingCommand) -> Result<Bytes> {
    Ok(expect_success(response)?.body)
}

/// "SUCCESS with a decoded body": the body read by `decode` (for example a
/// model type's JSON decoder).
pub fn parse_success_body_with<T>(
    response: RemotingCommand,
    decode: impl FnOnce(&[u8]) -> rocketmq_model::Result<T>,
) -> Result<T> {
    let body = parse_success_body(response)?;
    Ok(decode(&body)?)
}

/// "SUCCESS with a JSON body": the body decoded as `B`.
pub fn parse_success_json<B: JsonBody>(response: RemotingCommand) -> Result<B> {
    parse_success_body_with(response, B::decode)
}

/// Encodes a JSON request body.
pub fn json_body<B: JsonBody>(body: &B) -> Result<Bytes> {
    Ok(Bytes::from(body.encode()?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI32, Ordering};

    use rocketmq_model::header::EmptyHeader;
    use rocketmq_model::{ModelError, RequestCode};

    use super::*;

    /// A call answering the response's opaque, to check what `execute` sent.
    struct Echo;

    impl Call for Echo {
        type Response = i32;

        fn into_command(self) -> Result<RemotingCommand> {
            Ok(RemotingCommand::request(RequestCode::HEART_BEAT))
        }

        fn parse_response(response: RemotingCommand) -> Result<i32> {
            Ok(expect_success(response)?.flag)
        }
    }

    /// A fake peer answering every request with `code`, echoing its flag.
    fn peer(
        code: ResponseCode,
    ) -> impl Service<RemotingCommand, Response = RemotingCommand, Error = RemotingError> {
        tower::service_fn(move |req: RemotingCommand| async move {
            let mut resp = RemotingCommand::response(code, req.opaque).with_remark("busy");
            resp.flag = req.flag;
            Ok::<_, RemotingError>(resp)
        })
    }

    #[tokio::test]
    async fn execute_reads_a_typed_answer() {
        assert_eq!(
            execute(&mut peer(ResponseCode::SUCCESS), Echo)
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn oneway_sets_the_flag_and_ignores_the_answer() {
        let seen = Arc::new(AtomicI32::new(-1));
        let flag = Arc::clone(&seen);
        let mut svc = tower::service_fn(move |req: RemotingCommand| {
            flag.store(req.flag, Ordering::SeqCst);
            async {
                Ok::<_, RemotingError>(RemotingCommand::response(ResponseCode::SYSTEM_ERROR, 0))
            }
        });
        execute(&mut svc, Oneway(Echo)).await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), crate::command::FLAG_ONEWAY);
    }

    #[tokio::test]
    async fn rejected_code_is_a_typed_error_with_the_address() {
        let err = execute(&mut peer(ResponseCode::SYSTEM_BUSY), Echo)
            .await
            .unwrap_err();
        assert!(matches!(
            &err,
            RemotingError::Response { addr, code: ResponseCode::SYSTEM_BUSY, remark }
                if addr.is_empty() && remark == "busy"
        ));
        let err = execute_at(&mut peer(ResponseCode::SYSTEM_BUSY), "10.0.0.1:10911", Echo)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "SYSTEM_BUSY(2) from 10.0.0.1:10911: busy");
        assert!(err.is_retriable());
    }

    #[tokio::test]
    async fn transport_errors_pass_through() {
        let mut svc = tower::service_fn(|_req: RemotingCommand| async {
            Err::<RemotingCommand, _>(RemotingError::NoAddress("none".into()))
        });
        let err = execute_at(&mut svc, "a:1", Echo).await.unwrap_err();
        assert!(matches!(err, RemotingError::NoAddress(_)));
    }

    #[test]
    fn response_shape_helpers() {
        let ok = RemotingCommand::response(ResponseCode::SUCCESS, 1).with_body("b");
        assert!(parse_success(ok.clone()).is_ok());
        assert_eq!(parse_success_body(ok.clone()).unwrap(), "b");
        assert_eq!(
            parse_success_header::<EmptyHeader>(ok.clone()).unwrap(),
            EmptyHeader
        );
        let decoded =
            parse_success_body_with(ok.clone(), |b| Ok::<_, ModelError>(b.len())).unwrap();
        assert_eq!(decoded, 1);
        let err =
            parse_success_body_with(ok, |_| Err::<(), _>(ModelError::malformed("Body", "bad")))
                .unwrap_err();
        assert!(matches!(err, RemotingError::Model(_)));

        let not_found = RemotingCommand::response(ResponseCode::QUERY_NOT_FOUND, 1);
        assert!(expect_codes(not_found.clone(), &[ResponseCode::QUERY_NOT_FOUND]).is_ok());
        let err = parse_success(not_found).unwrap_err();
        assert_eq!(err.response_code(), Some(ResponseCode::QUERY_NOT_FOUND));
    }
}
