//! `RemotingCommand`: one request or response of the remoting protocol
//! (PROTOCOL.md §2).

use std::fmt;

use bytes::Bytes;
use rocketmq_model::header::DynHeader;
use rocketmq_model::{CommandHeader, ExtFields, RequestCode, ResponseCode};

/// The `version` this client announces: 479 is V5_3_3, what the Java 5.3.3
/// client sends. Servers gate features on it (PROTOCOL.md §2.7): at 401 and above
/// the nameserver answers standard JSON routes.
pub const CLIENT_VERSION: i32 = 479;

/// Flag bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 0b01;
/// Flag bit 1: the request is oneway; the receiver must not answer.
pub const FLAG_ONEWAY: i32 = 0b10;

/// How a command's header is serialized (the top byte of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// A JSON object, the Java default (type 0).
    #[default]
    Json,
    /// The compact ROCKETMQ binary layout (type 1).
    RocketMq,
}

impl SerializeType {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// From the wire value.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }

    /// The name Java writes in `serializeTypeCurrentRPC`.
    pub fn name(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

/// The language of the sender (PROTOCOL.md §2.4). Unknown values are preserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LanguageCode(pub u8);

impl LanguageCode {
    /// Java.
    pub const JAVA: LanguageCode = LanguageCode(0);
    /// C++.
    pub const CPP: LanguageCode = LanguageCode(1);
    /// .NET.
    pub const DOTNET: LanguageCode = LanguageCode(2);
    /// Python.
    pub const PYTHON: LanguageCode = LanguageCode(3);
    /// Delphi.
    pub const DELPHI: LanguageCode = LanguageCode(4);
    /// Erlang.
    pub const ERLANG: LanguageCode = LanguageCode(5);
    /// Ruby.
    pub const RUBY: LanguageCode = LanguageCode(6);
    /// Other.
    pub const OTHER: LanguageCode = LanguageCode(7);
    /// HTTP.
    pub const HTTP: LanguageCode = LanguageCode(8);
    /// Go.
    pub const GO: LanguageCode = LanguageCode(9);
    /// PHP.
    pub const PHP: LanguageCode = LanguageCode(10);
    /// OMS.
    pub const OMS: LanguageCode = LanguageCode(11);
    /// Rust (since 4.9.4).
    pub const RUST: LanguageCode = LanguageCode(12);
    /// Node.js.
    pub const NODE_JS: LanguageCode = LanguageCode(13);

    const NAMES: [&'static str; 14] = [
        "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO",
        "PHP", "OMS", "RUST", "NODE_JS",
    ];

    /// The enum name Java uses in JSON headers, if known.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES.get(usize::from(self.0)).copied()
    }

    /// From the enum name Java uses in JSON headers.
    pub fn from_name(name: &str) -> Option<Self> {
        let index = Self::NAMES.iter().position(|n| *n == name)?;
        u8::try_from(index).ok().map(LanguageCode)
    }
}

impl fmt::Debug for LanguageCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "LanguageCode({})", self.0),
        }
    }
}

/// One request or response.
///
/// `code` is a request code on requests and a response code on responses; use
/// [`request_code`](Self::request_code) or [`response_code`](Self::response_code)
/// for the typed view. The body is shared, never copied, on its way through.
#[derive(Clone, PartialEq)]
pub struct RemotingCommand {
    /// Request or response code.
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's protocol version.
    pub version: i32,
    /// Correlates a response with its request.
    pub opaque: i32,
    /// Bit flags: [`FLAG_RESPONSE`], [`FLAG_ONEWAY`].
    pub flag: i32,
    /// Human-readable text, usually an error description on failures.
    pub remark: Option<String>,
    /// The custom-header fields.
    pub ext_fields: ExtFields,
    /// The body; empty means none.
    pub body: Bytes,
    /// How the header is (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with this client's language and version; the opaque is set when
    /// it is sent.
    pub fn request(code: RequestCode) -> Self {
        RemotingCommand {
            code: code.0,
            language: LanguageCode::RUST,
            version: CLIENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A request carrying a typed header.
    pub fn request_with_header(code: RequestCode, header: &impl CommandHeader) -> Self {
        let mut cmd = Self::request(code);
        cmd.ext_fields = header.to_ext_fields();
        cmd
    }

    /// [`request_with_header`](Self::request_with_header), consuming the
    /// header: it stays typed ([`ExtFields::from_header`]) until the codec
    /// writes it straight into the frame, with no map of text in between.
    pub fn request_from_header(code: RequestCode, header: impl DynHeader) -> Self {
        let mut cmd = Self::request(code);
        cmd.ext_fields = ExtFields::from_header(header);
        cmd
    }

    /// A response to the request with `opaque`.
    pub fn response(code: ResponseCode, opaque: i32) -> Self {
        RemotingCommand {
            code: code.0,
            flag: FLAG_RESPONSE,
            opaque,
            ..Self::request(RequestCode(0))
        }
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Replaces the remark.
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Adds a typed header's fields.
    pub fn with_header(mut self, header: &impl CommandHeader) -> Self {
        header.extend_ext_fields(&mut self.ext_fields);
        self
    }

    /// Chooses the header serialization.
    pub fn with_serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.serialize_type = serialize_type;
        self
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a oneway request.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks this request oneway.
    pub fn set_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// The code read as a request code.
    pub fn request_code(&self) -> RequestCode {
        RequestCode(self.code)
    }

    /// The code read as a response code.
    pub fn response_code(&self) -> ResponseCode {
        ResponseCode(self.code)
    }

    /// Decodes the custom header into a typed header.
    pub fn decode_header<H: CommandHeader>(&self) -> rocketmq_model::Result<H> {
        H::from_ext_fields(&self.ext_fields)
    }
}

impl fmt::Debug for RemotingCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RemotingCommand");
        if self.is_response() {
            d.field("code", &self.response_code());
        } else {
            d.field("code", &self.request_code());
        }
        d.field("opaque", &self.opaque)
            .field("flag", &self.flag)
            .field("language", &self.language)
            .field("version", &self.version)
            .field("remark", &self.remark)
            .field("ext_fields", &self.ext_fields)
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_names_round_trip() {
        assert_eq!(LanguageCode::RUST.name(), Some("RUST"));
        assert_eq!(LanguageCode::from_name("GO"), Some(LanguageCode::GO));
        assert_eq!(LanguageCode::from_name("COBOL"), None);
        assert_eq!(format!("{:?}", LanguageCode(99)), "LanguageCode(99)");
    }

    #[test]
    fn commands_cross_unwinding_like_plain_data() {
        fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        unwind_safe::<RemotingCommand>();
    }

    #[test]
    fn response_flags() {
        let resp = RemotingCommand::response(ResponseCode::SUCCESS, 77);
        assert!(resp.is_response());
        assert_eq!(resp.opaque, 77);
        let mut req = RemotingCommand::request(RequestCode::HEART_BEAT);
        assert!(!req.is_response() && !req.is_oneway());
        req.set_oneway();
        assert!(req.is_oneway());
    }
}
