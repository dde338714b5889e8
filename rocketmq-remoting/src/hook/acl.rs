//! ACL request signing (PROTOCOL.md §9): `AccessKey`, optional
//! `SecurityToken`, and an HmacSHA1 `Signature` over the sorted field values
//! and the body.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rocketmq_model::ExtFields;
use sha1::Sha1;

use super::RpcHook;
use crate::command::RemotingCommand;

/// ExtField carrying the access key.
pub const ACCESS_KEY: &str = "AccessKey";
/// ExtField carrying the optional security token.
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// ExtField carrying the signature; never part of the signed content.
pub const SIGNATURE: &str = "Signature";
/// A QUERY_MESSAGE field that 4.x servers leave out of the signed content
/// (PROTOCOL.md §9.3).
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// An ACL identity. `Debug` never prints the secret key or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key, sent in clear.
    pub access_key: String,
    /// The secret key; signs requests and is never sent.
    pub secret_key: String,
    /// An optional session token, sent and signed.
    pub security_token: Option<String>,
}

impl Credentials {
    /// Credentials without a security token.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    /// Adds a security token.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Signs every outgoing request with [`Credentials`] (the Java
/// `AclClientRPCHook`). Install it last: the server re-signs every received
/// field except `Signature`, so nothing may be added after it ran.
#[derive(Debug, Clone)]
pub struct AclHook {
    credentials: Credentials,
    exclude_unique_key_query: bool,
}

impl AclHook {
    /// A hook signing with `credentials`, as the Java 5.x client does.
    pub fn new(credentials: Credentials) -> Self {
        AclHook {
            credentials,
            exclude_unique_key_query: false,
        }
    }

    /// Leaves `_UNIQUE_KEY_QUERY` out of the signed content, for 4.x servers
    /// (PROTOCOL.md §9.3). Off by default.
    pub fn exclude_unique_key_query(mut self, exclude: bool) -> Self {
        self.exclude_unique_key_query = exclude;
        self
    }

    /// Adds `AccessKey`, `SecurityToken` (when set) and `Signature` to `cmd`.
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        let fields = &mut cmd.ext_fields;
        fields.insert(ACCESS_KEY, self.credentials.access_key.as_str());
        if let Some(token) = &self.credentials.security_token {
            fields.insert(SECURITY_TOKEN, token.as_str());
        }
        fields.remove(SIGNATURE);
        let skip: &[&str] = if self.exclude_unique_key_query {
            &[UNIQUE_KEY_QUERY]
        } else {
            &[]
        };
        let signature = signature(&self.credentials.secret_key, fields, &cmd.body, skip);
        cmd.ext_fields.insert(SIGNATURE, signature);
    }
}

impl RpcHook for AclHook {
    fn before_request(&self, _addr: &str, cmd: &mut RemotingCommand) {
        self.sign(cmd);
    }
}

/// The ACL signature of a request: Base64 (standard, padded) of HmacSHA1 keyed
/// with `secret_key` over the values of `fields` in key order (excluding
/// `Signature` and the `skip` keys), followed by `body`.
pub fn signature(secret_key: &str, fields: &ExtFields, body: &[u8], skip: &[&str]) -> String {
    let mut signed: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| *k != SIGNATURE && !skip.contains(k))
        .collect();
    signed.sort_unstable_by_key(|(k, _)| *k);
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for (_, value) in signed {
        mac.update(value.as_bytes());
    }
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use rocketmq_model::RequestCode;

    use super::*;

    fn send_request() -> RemotingCommand {
        let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE).with_body("hello body");
        for (k, v) in [
            ("topic", "TopicTest"),
            ("queueId", "3"),
            ("producerGroup", "pg"),
        ] {
            cmd.ext_fields.insert(k, v);
        }
        cmd
    }

    // Expected values computed independently with Python:
    // base64.b64encode(hmac.new(key, content, hashlib.sha1).digest())
    // content = "rocketmq2" "tok-1" "pg" "3" "TopicTest" + b"hello body"
    // (keys AccessKey < SecurityToken < producerGroup < queueId < topic).
    #[test]
    fn signature_matches_an_independent_hmac_sha1() {
        let hook =
            AclHook::new(Credentials::new("rocketmq2", "12345678").with_security_token("tok-1"));
        let mut cmd = send_request();
        hook.sign(&mut cmd);
        let f = &cmd.ext_fields;
        assert_eq!(f["AccessKey"], "rocketmq2");
        assert_eq!(f["SecurityToken"], "tok-1");
        assert_eq!(f["Signature"], "9EPhliI4ax3gaY5yNEW1aytMEco=");
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn signature_without_token_or_body() {
        let hook = AclHook::new(Credentials::new("ak", "sk"));
        let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        cmd.ext_fields.insert("topic", "T");
        hook.sign(&mut cmd);
        assert_eq!(cmd.ext_fields["Signature"], "vX6jW2Q9g11lvMjNC+gReuZ8fTQ=");
        assert!(!cmd.ext_fields.contains_key("SecurityToken"));
    }

    #[test]
    fn resigning_ignores_the_old_signature() {
        let hook = AclHook::new(Credentials::new("ak", "sk"));
        let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        cmd.ext_fields.insert("topic", "T");
        cmd.ext_fields.insert("Signature", "stale");
        hook.sign(&mut cmd);
        assert_eq!(cmd.ext_fields["Signature"], "vX6jW2Q9g11lvMjNC+gReuZ8fTQ=");
    }

    #[test]
    fn unique_key_query_can_be_left_out_of_the_content() {
        let mut with_key = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        with_key.ext_fields.insert("topic", "T");
        with_key.ext_fields.insert(UNIQUE_KEY_QUERY, "true");
        AclHook::new(Credentials::new("ak", "sk"))
            .exclude_unique_key_query(true)
            .sign(&mut with_key);
        assert_eq!(
            with_key.ext_fields["Signature"],
            "vX6jW2Q9g11lvMjNC+gReuZ8fTQ="
        );
        assert_eq!(with_key.ext_fields[UNIQUE_KEY_QUERY], "true");
    }

    #[test]
    fn debug_redacts_secret_and_token() {
        let creds =
            Credentials::new("my-access", "super-secret").with_security_token("session-tok");
        let shown = format!("{creds:?} {:?}", AclHook::new(creds.clone()));
        assert!(shown.contains("my-access"));
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(!shown.contains("session-tok"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn a_signed_command_shows_no_security_token_in_debug() {
        let hook = AclHook::new(
            Credentials::new("my-access", "super-secret").with_security_token("sts-tok"),
        );
        let mut cmd = send_request();
        hook.sign(&mut cmd);
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("sts-tok"), "{shown}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(
            shown.contains("my-access") && shown.contains("TopicTest"),
            "{shown}"
        );
        assert!(shown.contains("SecurityToken"), "{shown}");
        // The fields themselves are untouched.
        assert_eq!(cmd.ext_fields[SECURITY_TOKEN], "sts-tok");
    }

    proptest::proptest! {
        #[test]
        fn signature_depends_on_content_not_insertion_order(
            fields in proptest::collection::btree_map("[A-Za-z_]{1,8}", "[ -~]{0,12}", 0..8),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..32),
        ) {
            let forward: ExtFields = fields.clone().into_iter().collect();
            let mut backward = ExtFields::new();
            for (k, v) in fields.iter().rev() {
                backward.insert(k.clone(), v.clone());
            }
            backward.insert(SIGNATURE, "ignored");
            let a = signature("sk", &forward, &body, &[]);
            proptest::prop_assert_eq!(&a, &signature("sk", &backward, &body, &[]));
            let mut longer = body.clone();
            longer.push(b'x');
            proptest::prop_assert_ne!(&a, &signature("sk", &forward, &longer, &[]));
            proptest::prop_assert_ne!(&a, &signature("other", &forward, &body, &[]));
        }
    }
}
