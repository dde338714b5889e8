//! Building responses.

use rocketmq_model::{CommandHeader, ResponseCode};
use rocketmq_remoting::RemotingCommand;

/// A SUCCESS response (the connection stamps the opaque).
pub(crate) fn ok() -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SUCCESS, 0)
}

/// A SUCCESS response carrying `header`.
pub(crate) fn ok_with(header: &impl CommandHeader) -> RemotingCommand {
    ok().with_header(header)
}

/// A response with `code` and `remark`.
pub(crate) fn error(code: ResponseCode, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response(code, 0).with_remark(remark)
}

/// A refusal computed on the way to an answer: a boxed error response, small
/// enough to travel in a `Result`.
#[derive(Debug)]
pub(crate) struct Rejection(Box<RemotingCommand>);

impl Rejection {
    /// The response to send.
    pub(crate) fn into_response(self) -> RemotingCommand {
        *self.0
    }
}

impl From<RemotingCommand> for Rejection {
    fn from(response: RemotingCommand) -> Self {
        Rejection(Box::new(response))
    }
}

/// A refusal with `code` and `remark`.
pub(crate) fn reject(code: ResponseCode, remark: impl Into<String>) -> Rejection {
    Rejection::from(error(code, remark))
}

/// The answer to a request whose header does not decode: Java's
/// `RemotingCommandException` becomes SYSTEM_ERROR with the reason as remark.
pub(crate) fn bad_header(error: &rocketmq_model::ModelError) -> RemotingCommand {
    self::error(ResponseCode::SYSTEM_ERROR, error.to_string())
}

/// Java's answer to a request code it does not handle.
pub(crate) fn not_supported(code: i32) -> RemotingCommand {
    error(
        ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
        format!(" request type {code} not supported"),
    )
}

/// Decodes the request's header or returns the SYSTEM_ERROR answer from the
/// enclosing handler.
macro_rules! header {
    ($request:expr, $ty:ty) => {
        match $request.decode_header::<$ty>() {
            Ok(header) => header,
            Err(error) => return $crate::reply::bad_header(&error),
        }
    };
}
pub(crate) use header;
