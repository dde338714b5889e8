//! Request authentication, as a broker with ACL on checks it (Java 5.x
//! `AuthenticationPipeline` with `DefaultAuthenticationContextBuilder`; 4.x
//! `PlainAccessValidator`): every request names a known `AccessKey` and
//! carries the `Signature` its user's secret makes over the other extFields
//! and the body (PROTOCOL.md §9). Responses are not signed.

use std::collections::BTreeMap;
use std::fmt;

use rocketmq_model::ResponseCode;
use rocketmq_remoting::RemotingCommand;
use rocketmq_remoting::hook::acl::{ACCESS_KEY, SIGNATURE, UNIQUE_KEY_QUERY, signature};

use crate::reply;

/// The remark of every refusal (what rocketmq-broker answers; Java 5.x says
/// which check failed instead).
pub(crate) const REFUSED_REMARK: &str = "Authentication credentials are invalid";

/// The highest request version whose `_UNIQUE_KEY_QUERY` field is left out
/// of the signed content (Java's `V4_9_3` ordinal, 5.x rule).
const LAST_VERSION_SKIPPING_UNIQUE_KEY_QUERY: i32 = 399;

/// The users a cluster accepts: secret keys by access key. `Debug` shows the
/// access keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Acl {
    users: BTreeMap<String, String>,
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("access_keys", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a request was refused (logged; the client only sees the remark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoAccessKey,
    UnknownAccessKey,
    BadSignature,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::NoAccessKey => "no AccessKey",
            Refusal::UnknownAccessKey => "unknown AccessKey",
            Refusal::BadSignature => "Signature does not match",
        }
    }
}

impl Acl {
    /// Adds (or replaces) a user.
    pub(crate) fn add_user(&mut self, access_key: String, secret_key: String) {
        self.users.insert(access_key, secret_key);
    }

    /// Whether any user was added (ACL is on).
    pub(crate) fn is_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// The NO_PERMISSION answer to `request` when it does not authenticate,
    /// `None` when it does (or ACL is off).
    pub(crate) fn refusal(&self, request: &RemotingCommand) -> Option<RemotingCommand> {
        if !self.is_enabled() {
            return None;
        }
        let refusal = self.check(request).err()?;
        tracing::debug!(
            code = request.code,
            access_key = request.ext_fields.get(ACCESS_KEY),
            reason = refusal.reason(),
            "request refused: authentication failed"
        );
        Some(reply::error(ResponseCode::NO_PERMISSION, REFUSED_REMARK))
    }

    fn check(&self, request: &RemotingCommand) -> Result<(), Refusal> {
        let fields = &request.ext_fields;
        let access_key = fields.get(ACCESS_KEY).ok_or(Refusal::NoAccessKey)?;
        let secret = self
            .users
            .get(access_key)
            .ok_or(Refusal::UnknownAccessKey)?;
        let sent = fields.get(SIGNATURE).ok_or(Refusal::BadSignature)?;
        let skip: &[&str] = if request.version <= LAST_VERSION_SKIPPING_UNIQUE_KEY_QUERY {
            &[UNIQUE_KEY_QUERY]
        } else {
            &[]
        };
        let expected = signature(secret, fields, &request.body, skip);
        if same_bytes(expected.as_bytes(), sent.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::BadSignature)
        }
    }
}

/// Compares in time independent of where the inputs differ (Java:
/// `MessageDigest.isEqual`).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use rocketmq_model::RequestCode;
    use rocketmq_remoting::{AclHook, Credentials};

    use super::*;

    fn acl() -> Acl {
        let mut acl = Acl::default();
        acl.add_user("ak".into(), "sk".into());
        acl.add_user("other".into(), "other-secret".into());
        acl
    }

    fn request() -> RemotingCommand {
        let mut cmd = RemotingCommand::request(RequestCode::QUERY_MESSAGE).with_body("b");
        cmd.ext_fields.insert("topic", "T");
        cmd.ext_fields.insert(UNIQUE_KEY_QUERY, "true");
        cmd
    }

    fn signed(ak: &str, sk: &str, exclude_unique_key: bool) -> RemotingCommand {
        let mut cmd = request();
        AclHook::new(Credentials::new(ak, sk))
            .exclude_unique_key_query(exclude_unique_key)
            .sign(&mut cmd);
        cmd
    }

    #[test]
    fn each_user_signs_with_its_own_secret() {
        let acl = acl();
        assert_eq!(acl.check(&signed("ak", "sk", false)), Ok(()));
        assert_eq!(acl.check(&signed("other", "other-secret", false)), Ok(()));
        assert_eq!(
            acl.check(&signed("other", "sk", false)),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            acl.check(&signed("nobody", "sk", false)),
            Err(Refusal::UnknownAccessKey)
        );
        assert_eq!(acl.check(&request()), Err(Refusal::NoAccessKey));
        let mut unsigned = signed("ak", "sk", false);
        unsigned.ext_fields.remove(SIGNATURE);
        assert_eq!(acl.check(&unsigned), Err(Refusal::BadSignature));
    }

    #[test]
    fn unique_key_query_is_signed_from_version_400_on() {
        let acl = acl();
        let mut old_style = signed("ak", "sk", true);
        assert_eq!(acl.check(&old_style), Err(Refusal::BadSignature));
        old_style.version = 399;
        assert_eq!(acl.check(&old_style), Ok(()));
        let mut new_style = signed("ak", "sk", false);
        new_style.version = 399;
        assert_eq!(acl.check(&new_style), Err(Refusal::BadSignature));
    }

    #[test]
    fn refusals_are_no_permission_and_acl_off_refuses_nothing() {
        let refused = acl().refusal(&request()).unwrap();
        assert_eq!(refused.code, ResponseCode::NO_PERMISSION.0);
        assert_eq!(refused.remark.as_deref(), Some(REFUSED_REMARK));
        assert!(acl().refusal(&signed("ak", "sk", false)).is_none());
        assert!(Acl::default().refusal(&request()).is_none());
    }

    #[test]
    fn debug_shows_access_keys_only() {
        let shown = format!("{:?}", acl());
        assert!(shown.contains("other"), "{shown}");
        assert!(!shown.contains("other-secret"), "{shown}");
        assert!(!shown.contains("\"sk\""), "{shown}");
    }

    #[test]
    fn same_bytes_compares_contents_and_lengths() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(same_bytes(b"", b""));
    }
}
