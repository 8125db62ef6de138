//! The broker's WebSocket protocol: JSON text frames, one message per frame, tagged by `type`.
//!
//! These types are the single definition used by the broker (native) and the SDK (wasm), so the two
//! cannot drift. `docs/PROTOCOL.md` shows an example of every message and every error code.
//!
//! Integers that can exceed 2^53 (work in expected hashes, a `u128`) travel as decimal strings, since
//! JavaScript numbers would round them. Hashes, headers and targets travel as lower-case hex.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::json::Object;

/// The protocol version this crate speaks; `hello.v` must equal it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame the broker accepts, in bytes. Every valid client message is far smaller.
pub const MAX_FRAME_BYTES: usize = 4096;

/// Work as expected hashes, an exact integer (serialised as a decimal string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Work(pub u128);

impl Serialize for Work {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl Work {
    /// Work from its wire form: a decimal string of a u128 (digits only).
    pub fn parse(text: &str) -> Option<Work> {
        if text.is_empty() {
            return None;
        }
        // By hand: `u128::from_str` brings its generic radix and sign handling into the SDK's wasm.
        let mut digits =
            text.bytes().map(|b| b.wrapping_sub(b'0')).map(|d| (d <= 9).then_some(u128::from(d)));
        digits.try_fold(0u128, |n, d| n.checked_mul(10)?.checked_add(d?)).map(Work)
    }
}

impl<'de> Deserialize<'de> for Work {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Work, D::Error> {
        let text = String::deserialize(deserializer)?;
        Work::parse(&text).ok_or_else(|| serde::de::Error::custom("work must be a decimal string of a u128"))
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message from the SDK to the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message of every connection (and of a resumed one).
    Hello(Hello),
    /// A nonce the client found for a job.
    Submit(Submit),
    /// The client has searched the whole nonce space of its current job: the broker answers with a
    /// new job at the same share target.
    More {
        /// The id of the exhausted job (must be the current one).
        job: String,
    },
    /// Keep-alive; the broker answers `pong` with the same `t`.
    Ping {
        /// Any value the client chooses (typically a timestamp in ms).
        t: u64,
    },
}

impl ClientMessage {
    /// The frame's JSON text, as serde would write it, without serde: the SDK's wasm sends these,
    /// and serde's serialiser would cost it kilobytes (see [`crate::json`]). Tested against serde.
    pub fn to_json(&self) -> String {
        let object = match self {
            ClientMessage::Hello(hello) => {
                let mut o = Object::tagged("hello");
                o.uint("v", hello.v.into())
                    .str("site", &hello.site)
                    .opt_str("user", hello.user.as_deref())
                    .opt_str("user_proof", hello.user_proof.as_deref())
                    .opt_str("user_secret", hello.user_secret.as_deref());
                let mut consent = Object::new();
                consent
                    .str("id", &hello.consent.id)
                    .uint("given_at", hello.consent.given_at)
                    .uint("expires_at", hello.consent.expires_at);
                o.object("consent", consent).opt_str("content", hello.content.as_deref());
                let info = &hello.client;
                let mut client = Object::new();
                client
                    .uint("threads", info.threads.into())
                    .bool("simd", info.simd)
                    .opt_uint("hashrate", info.hashrate)
                    .opt_str("engine", info.engine.as_deref())
                    .opt_uint("cores", info.cores.map(u64::from));
                o.object("client", client).opt_str("resume", hello.resume.as_deref());
                if hello.gate_only {
                    o.bool("gate_only", true);
                }
                o
            }
            ClientMessage::Submit(submit) => {
                let mut o = Object::tagged("submit");
                o.str("job", &submit.job).str("nonce", &submit.nonce);
                o
            }
            ClientMessage::More { job } => {
                let mut o = Object::tagged("more");
                o.str("job", job);
                o
            }
            ClientMessage::Ping { t } => {
                let mut o = Object::tagged("ping");
                o.uint("t", *t);
                o
            }
        };
        object.finish()
    }
}

/// `hello`: who is mining, for which site, under which consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Protocol version: must be [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The publisher's public site key.
    pub site: String,
    /// Who is mining: a publisher-vouched id (with `user_proof`), a broker-issued anonymous id
    /// (`anon_…`, with `user_secret`), or absent for a new anonymous visitor, whose id and secret
    /// then come in `welcome`. 1-128 bytes of UTF-8, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The publisher's proof for `user`: `<exp>.<hex HMAC-SHA256(site secret, message)>`
    /// (docs/PROTOCOL.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_proof: Option<String>,
    /// The secret the broker issued with an anonymous `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_secret: Option<String>,
    /// The consent record the SDK holds; without one the broker hands out no work.
    pub consent: Consent,
    /// The content item this visitor is unlocking (`<minepass-gate content="…">`), if any: shares of
    /// the session count toward its quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Facts about the client, used for the first share target.
    pub client: ClientInfo,
    /// A resume token from an earlier `welcome`, to continue that session after a reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// Proof of work only: the session gets synthetic gate headers even when the broker mines for a
    /// pool, so no coin is mined on this device. App hosts ask for it by default (app-store rules,
    /// docs/HOST.md). A client may always ask for less; it cannot ask for more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate_only: bool,
}

/// The visitor's consent as the SDK recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// Random id of the consent record (kept by the SDK, logged by the broker).
    pub id: String,
    /// When consent was given, Unix time in milliseconds.
    pub given_at: u64,
    /// When it lapses, Unix time in milliseconds.
    pub expires_at: u64,
}

/// What the client reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfo {
    /// Worker threads the SDK runs.
    pub threads: u32,
    /// Whether the simd128 kernel is in use.
    pub simd: bool,
    /// Measured hashes per second over all threads, if known (the broker sizes the first share with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<u64>,
    /// The browser engine: `blink`, `gecko`, `webkit` (anything else counts as `other`). With `cores`
    /// and `simd` it is the device class under which the broker files the rate it measures from the
    /// session's verified shares: the consent dialog's estimate for the next visitor of that class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// `navigator.hardwareConcurrency` as the browser reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
}

/// `submit`: a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The job id from `job`.
    pub job: String,
    /// The header nonce (little-endian `u32` at bytes 76..80) as 8 hex digits of its value.
    pub nonce: String,
}

/// A message from the broker to the SDK. Deserialisation ignores unknown fields (a newer broker may
/// add some; SDKs in the field must keep working) and goes through one flat struct, which keeps the
/// SDK's wasm small (serde's internally tagged enums generate much code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `hello`: the session is open.
    Welcome(Welcome),
    /// Work to do; replaces any earlier job.
    Job(Job),
    /// A share was verified and durably credited.
    Accepted {
        /// The share's job.
        job: String,
        /// The share's nonce, as submitted.
        nonce: String,
        /// Work credited for it.
        work: Work,
        /// The user's spendable credits at this site after it (expected hashes).
        credits: Work,
    },
    /// A share was refused; nothing was credited.
    Rejected {
        /// The share's job (as submitted).
        job: String,
        /// The share's nonce (as submitted).
        nonce: String,
        /// Why.
        code: ErrorCode,
    },
    /// Credited work toward one content item's quota.
    Progress(Progress),
    /// A quota was met: a signed token the publisher verifies and, for sealed content, the keys
    /// that open it.
    Unlock {
        /// The content item.
        content: String,
        /// The unlock token (a JWT, EdDSA).
        token: String,
        /// For a sealed item: the AES-256-GCM key of every live version of its ciphertext.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        keys: Vec<ContentKey>,
    },
    /// A protocol error. `fatal` errors are followed by the broker closing the connection.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
        /// Whether the broker closes the connection after this message.
        fatal: bool,
    },
    /// Answer to `ping`.
    Pong {
        /// The client's `t`.
        t: u64,
    },
    /// There is no work right now (the broker's pools are unavailable and it is set to pause): stop
    /// hashing; a `job` follows when there is work again. Earlier jobs no longer accept shares.
    Wait {
        /// Why, as a stable code (`upstream_unavailable`).
        reason: String,
    },
}

/// Every field of every broker message, as plain JSON values. The broker's JSON parses into it with
/// serde; the SDK fills it from `JSON.parse` without serde (a much smaller wasm module). Either way
/// [`ServerMessage::try_from`] does the checking, so there is one definition of what is valid.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    pub v: Option<u32>,
    pub session: Option<String>,
    pub resume: Option<String>,
    pub mode: Option<String>,
    pub share_interval_ms: Option<u64>,
    pub progress: Option<Vec<FrameProgress>>,
    pub id: Option<String>,
    pub header: Option<String>,
    pub target: Option<String>,
    pub work: Option<String>,
    pub job: Option<String>,
    pub nonce: Option<String>,
    pub code: Option<String>,
    pub content: Option<String>,
    pub done: Option<String>,
    pub required: Option<String>,
    pub token: Option<String>,
    pub message: Option<String>,
    pub fatal: Option<bool>,
    pub t: Option<u64>,
    pub reason: Option<String>,
    pub credits: Option<String>,
    pub user: Option<String>,
    pub user_secret: Option<String>,
    pub keys: Option<Vec<FrameKey>>,
}

/// One entry of `unlock.keys` in a [`Frame`].
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct FrameKey {
    pub version: Option<u32>,
    pub key: Option<String>,
}

/// One entry of `welcome.progress` in a [`Frame`].
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct FrameProgress {
    pub content: Option<String>,
    pub done: Option<String>,
    pub required: Option<String>,
}

/// Why a [`Frame`] is not a valid [`ServerMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A field the message type needs is absent.
    Missing(&'static str),
    /// A field has a value outside its type (work not a decimal string, an unknown code or mode).
    Invalid(&'static str),
    /// A `type` this version does not know.
    UnknownType(String),
}

/// The message types a [`Frame`] can hold.
pub const SERVER_MESSAGE_TYPES: &[&str] =
    &["welcome", "job", "accepted", "rejected", "progress", "unlock", "error", "pong", "wait"];

fn need<T>(value: Option<T>, field: &'static str) -> Result<T, FrameError> {
    value.ok_or(FrameError::Missing(field))
}

fn need_work(value: Option<String>, field: &'static str) -> Result<Work, FrameError> {
    Work::parse(&need(value, field)?).ok_or(FrameError::Invalid(field))
}

fn need_code(value: Option<String>) -> Result<ErrorCode, FrameError> {
    ErrorCode::parse(&need(value, "code")?).ok_or(FrameError::Invalid("code"))
}

fn progress_of(
    content: Option<String>,
    done: Option<String>,
    required: Option<String>,
) -> Result<Progress, FrameError> {
    Ok(Progress {
        content: need(content, "content")?,
        done: need_work(done, "done")?,
        required: need_work(required, "required")?,
    })
}

impl TryFrom<Frame> for ServerMessage {
    type Error = FrameError;

    // Fields are taken, not moved out: a partly moved `Frame` makes every `?` drop the rest field by
    // field, which was most of this function's 7 KB of wasm.
    fn try_from(mut f: Frame) -> Result<ServerMessage, FrameError> {
        Ok(match f.kind.as_str() {
            "welcome" => ServerMessage::Welcome(Welcome {
                v: need(f.v.take(), "v")?,
                session: need(f.session.take(), "session")?,
                resume: need(f.resume.take(), "resume")?,
                mode: WorkMode::parse(&need(f.mode.take(), "mode")?).ok_or(FrameError::Invalid("mode"))?,
                share_interval_ms: need(f.share_interval_ms.take(), "share_interval_ms")?,
                progress: need(f.progress.take(), "progress")?
                    .into_iter()
                    .map(|p| progress_of(p.content, p.done, p.required))
                    .collect::<Result<_, _>>()?,
                credits: need_work(f.credits.take(), "credits")?,
                user: need(f.user.take(), "user")?,
                user_secret: f.user_secret.take(),
            }),
            "job" => ServerMessage::Job(Job {
                id: need(f.id.take(), "id")?,
                header: need(f.header.take(), "header")?,
                target: need(f.target.take(), "target")?,
                work: need_work(f.work.take(), "work")?,
                mode: WorkMode::parse(&need(f.mode.take(), "mode")?).ok_or(FrameError::Invalid("mode"))?,
            }),
            "accepted" => ServerMessage::Accepted {
                job: need(f.job.take(), "job")?,
                nonce: need(f.nonce.take(), "nonce")?,
                work: need_work(f.work.take(), "work")?,
                credits: need_work(f.credits.take(), "credits")?,
            },
            "rejected" => ServerMessage::Rejected {
                job: need(f.job.take(), "job")?,
                nonce: need(f.nonce.take(), "nonce")?,
                code: need_code(f.code.take())?,
            },
            "progress" => {
                ServerMessage::Progress(progress_of(f.content.take(), f.done.take(), f.required.take())?)
            }
            "unlock" => ServerMessage::Unlock {
                content: need(f.content.take(), "content")?,
                token: need(f.token.take(), "token")?,
                keys: f
                    .keys
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| {
                        Ok(ContentKey { version: need(k.version, "version")?, key: need(k.key, "key")? })
                    })
                    .collect::<Result<_, _>>()?,
            },
            "error" => ServerMessage::Error {
                code: need_code(f.code.take())?,
                message: need(f.message.take(), "message")?,
                fatal: need(f.fatal.take(), "fatal")?,
            },
            "pong" => ServerMessage::Pong { t: need(f.t.take(), "t")? },
            "wait" => ServerMessage::Wait { reason: need(f.reason.take(), "reason")? },
            _ => return Err(FrameError::UnknownType(std::mem::take(&mut f.kind))),
        })
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ServerMessage, D::Error> {
        use serde::de::Error;
        ServerMessage::try_from(Frame::deserialize(deserializer)?).map_err(|error| match error {
            FrameError::Missing(field) => D::Error::missing_field(field),
            FrameError::Invalid(field) => D::Error::custom(format_args!("invalid value for `{field}`")),
            FrameError::UnknownType(kind) => D::Error::unknown_variant(&kind, SERVER_MESSAGE_TYPES),
        })
    }
}

/// `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Protocol version the broker speaks.
    pub v: u32,
    /// Session id (for logs and support).
    pub session: String,
    /// Token to send as `hello.resume` after a reconnect.
    pub resume: String,
    /// Where the work comes from.
    pub mode: WorkMode,
    /// The share interval the broker aims at, in milliseconds.
    pub share_interval_ms: u64,
    /// Current progress toward every content item of the site.
    pub progress: Vec<Progress>,
    /// The user's spendable credits at this site (expected hashes of verified work, less spends).
    pub credits: Work,
    /// The user id the session runs as.
    pub user: String,
    /// Set only when the broker has just issued an anonymous identity: the secret to keep and send as
    /// `hello.user_secret` with `user` from now on. Sent once; the broker keeps no copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_secret: Option<String>,
}

/// The key of one version of a sealed content item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentKey {
    /// The seal version (the second field of the sealed string `mp1.<version>.<iv>.<ciphertext>`).
    pub version: u32,
    /// The 32-byte AES-256-GCM key, base64url without padding.
    pub key: String,
}

impl ContentKey {
    /// The key as a JSON object (in the SDK's `unlock` event).
    pub fn json(&self) -> Object {
        let mut o = Object::new();
        o.uint("version", self.version.into()).str("key", &self.key);
        o
    }
}

/// Where jobs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkMode {
    /// Synthetic headers: proof of work for unlocks only, no coin is mined.
    Gate,
    /// Real block templates from an upstream pool.
    Pool,
    /// No work: the upstream pools are unavailable and the broker is set to pause (see `wait`).
    Paused,
}

impl WorkMode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkMode::Gate => "gate",
            WorkMode::Pool => "pool",
            WorkMode::Paused => "paused",
        }
    }

    /// The mode with this wire string.
    pub fn parse(text: &str) -> Option<WorkMode> {
        match text {
            "gate" => Some(WorkMode::Gate),
            "pool" => Some(WorkMode::Pool),
            "paused" => Some(WorkMode::Paused),
            _ => None,
        }
    }
}

/// `job`: an 80-byte header template and a share target. The client owns the whole 32-bit nonce space
/// of the header (headers are unique per session) and splits it among its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Job id, echoed by `submit`.
    pub id: String,
    /// The header, 160 hex digits; its nonce bytes are zero.
    pub header: String,
    /// The share target, 64 hex digits of its 32 little-endian bytes (the digest's byte order).
    pub target: String,
    /// Expected hashes per share at this target.
    pub work: Work,
    /// Where the header comes from: `pool` (a real block template) or `gate` (unlock work only).
    pub mode: WorkMode,
}

/// Credited work toward one content item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Content item id.
    pub content: String,
    /// Work credited so far.
    pub done: Work,
    /// Work the item requires.
    pub required: Work,
}

/// Every error and rejection code. Stable strings: clients and docs match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame was not valid JSON.
    BadJson,
    /// A binary frame was sent; the protocol is text only.
    BinaryFrame,
    /// The frame exceeded [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// The `type` is not one this version knows.
    UnknownType,
    /// A field is missing, mistyped or out of range.
    BadField,
    /// `hello.v` is not [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// The site key is unknown.
    UnknownSite,
    /// The site exists but is disabled.
    SiteDisabled,
    /// The consent record is missing, malformed, expired, dated in the future or longer-lived than
    /// the site allows.
    ConsentRequired,
    /// The hello's user id is not proven: a publisher-vouched id without a valid proof, or an
    /// anonymous id without its secret.
    BadUserProof,
    /// A message other than `hello` or `ping` arrived before `hello`.
    HelloRequired,
    /// A second `hello` on an open session.
    AlreadyHello,
    /// The nonce is not 8 hex digits.
    BadNonce,
    /// The share's hash is above its job's target.
    AboveTarget,
    /// The same nonce was already submitted for this job.
    Duplicate,
    /// The job was replaced and no longer accepts shares.
    StaleJob,
    /// No such job in this session.
    UnknownJob,
    /// Too many messages too fast.
    RateLimited,
    /// Too many connections from one address.
    TooManyConnections,
    /// The broker failed; nothing was credited. Retry later.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::BadJson,
        ErrorCode::BinaryFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownType,
        ErrorCode::BadField,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownSite,
        ErrorCode::SiteDisabled,
        ErrorCode::ConsentRequired,
        ErrorCode::BadUserProof,
        ErrorCode::HelloRequired,
        ErrorCode::AlreadyHello,
        ErrorCode::BadNonce,
        ErrorCode::AboveTarget,
        ErrorCode::Duplicate,
        ErrorCode::StaleJob,
        ErrorCode::UnknownJob,
        ErrorCode::RateLimited,
        ErrorCode::TooManyConnections,
        ErrorCode::Internal,
    ];

    /// The code with this wire string.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == text)
    }

    /// The code's wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BinaryFrame => "binary_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadField => "bad_field",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownSite => "unknown_site",
            ErrorCode::SiteDisabled => "site_disabled",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::BadUserProof => "bad_user_proof",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::AlreadyHello => "already_hello",
            ErrorCode::BadNonce => "bad_nonce",
            ErrorCode::AboveTarget => "above_target",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::StaleJob => "stale_job",
            ErrorCode::UnknownJob => "unknown_job",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a `submit.nonce`: exactly 8 hex digits, of either case.
pub fn parse_nonce(text: &str) -> Result<u32, ErrorCode> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ErrorCode::BadNonce);
    }
    u32::from_str_radix(text, 16).map_err(|_| ErrorCode::BadNonce)
}

/// Formats a header nonce for `submit.nonce`.
pub fn format_nonce(nonce: u32) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..8).rev().map(|i| HEX[(nonce >> (i * 4)) as usize & 0xf] as char).collect()
}

/// Why a text frame is not a [`ClientMessage`]: distinguishes bad JSON, unknown types and bad fields.
pub fn classify_client_frame(text: &str) -> Result<ClientMessage, ErrorCode> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ErrorCode::FrameTooLarge);
    }
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => Ok(message),
        Err(_) => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|_| ErrorCode::BadJson)?;
            match value.get("type").and_then(|t| t.as_str()) {
                // A hello without a consent record is refused as such, whatever else is wrong with it.
                Some("hello") if value.get("consent").is_none_or(|c| c.is_null()) => {
                    Err(ErrorCode::ConsentRequired)
                }
                Some("hello" | "submit" | "ping") => Err(ErrorCode::BadField),
                Some(_) => Err(ErrorCode::UnknownType),
                None => Err(ErrorCode::BadField),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn work_travels_as_a_decimal_string_beyond_2_pow_53() {
        let job = Job {
            id: "j1".into(),
            header: "00".repeat(80),
            target: "ff".repeat(32),
            work: Work(u128::MAX),
            mode: WorkMode::Pool,
        };
        let json = serde_json::to_string(&ServerMessage::Job(job.clone())).unwrap();
        assert!(json.contains(r#""type":"job""#), "{json}");
        assert!(json.contains(r#""work":"340282366920938463463374607431768211455""#), "{json}");
        assert_eq!(serde_json::from_str::<ServerMessage>(&json).unwrap(), ServerMessage::Job(job));
        assert!(serde_json::from_str::<Work>(r#""12a""#).is_err());
        assert!(serde_json::from_str::<Work>("12").is_err());
        assert!(serde_json::from_str::<Work>(r#""""#).is_err());
    }

    #[test]
    fn client_messages_written_by_hand_are_what_serde_writes_and_reads() {
        let full = Hello {
            v: PROTOCOL_VERSION,
            site: "site \"quoted\"".into(),
            user: Some("u1".into()),
            user_proof: Some("1700000000.ab".into()),
            user_secret: Some("usec_1".into()),
            consent: Consent { id: "c".into(), given_at: 1, expires_at: u64::MAX },
            content: Some("article\n1".into()),
            client: ClientInfo {
                threads: 7,
                simd: true,
                hashrate: Some(5_000_000),
                engine: Some("webkit".into()),
                cores: Some(4),
            },
            resume: Some("s.mac".into()),
            gate_only: true,
        };
        let bare = Hello {
            user: None,
            user_proof: None,
            user_secret: None,
            content: None,
            client: ClientInfo { threads: 1, simd: false, hashrate: None, engine: None, cores: None },
            resume: None,
            gate_only: false,
            ..full.clone()
        };
        let messages = [
            ClientMessage::Hello(full),
            ClientMessage::Hello(bare),
            ClientMessage::Submit(Submit { job: "j".into(), nonce: "0000000a".into() }),
            ClientMessage::More { job: "j".into() },
            ClientMessage::Ping { t: u64::MAX },
        ];
        for message in messages {
            let text = message.to_json();
            let ours: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(ours, serde_json::to_value(&message).unwrap(), "{text}");
            assert_eq!(serde_json::from_str::<ClientMessage>(&text).unwrap(), message, "the broker reads it");
        }
    }

    #[test]
    fn every_server_message_round_trips_ignores_unknown_fields_and_needs_its_own() {
        let progress = Progress { content: "a".into(), done: Work(1), required: Work(u128::MAX) };
        let messages = [
            ServerMessage::Welcome(Welcome {
                v: 1,
                session: "s".into(),
                resume: "s.mac".into(),
                mode: WorkMode::Pool,
                share_interval_ms: 4000,
                progress: vec![progress.clone()],
                credits: Work(3),
                user: "anon_0123".into(),
                user_secret: Some("usec_1".into()),
            }),
            ServerMessage::Job(Job {
                id: "j".into(),
                header: "00".into(),
                target: "ff".into(),
                work: Work(7),
                mode: WorkMode::Gate,
            }),
            ServerMessage::Accepted {
                job: "j".into(),
                nonce: "0000000a".into(),
                work: Work(7),
                credits: Work(9),
            },
            ServerMessage::Rejected { job: "j".into(), nonce: "0000000a".into(), code: ErrorCode::StaleJob },
            ServerMessage::Progress(progress),
            ServerMessage::Unlock {
                content: "a".into(),
                token: "jwt".into(),
                keys: vec![ContentKey { version: 2, key: "k".into() }],
            },
            ServerMessage::Error { code: ErrorCode::RateLimited, message: "slow".into(), fatal: false },
            ServerMessage::Pong { t: 9 },
            ServerMessage::Wait { reason: "upstream_unavailable".into() },
        ];
        for message in messages {
            let mut value = serde_json::to_value(&message).unwrap();
            assert_eq!(serde_json::from_value::<ServerMessage>(value.clone()).unwrap(), message);
            value["added_by_a_newer_broker"] = serde_json::json!(true);
            assert_eq!(serde_json::from_value::<ServerMessage>(value.clone()).unwrap(), message);
            let object = value.as_object_mut().unwrap();
            let field =
                object.keys().find(|k| *k != "type" && *k != "added_by_a_newer_broker").unwrap().clone();
            object.remove(&field);
            let error = serde_json::from_value::<ServerMessage>(value).unwrap_err().to_string();
            assert!(error.contains(&format!("missing field `{field}`")), "{error}");
        }
        assert!(serde_json::from_str::<ServerMessage>(r#"{"type":"surprise"}"#).is_err());
    }

    #[test]
    fn client_frames_are_classified_by_what_is_wrong() {
        let hello = r#"{"type":"hello","v":1,"site":"s","user":"u","consent":{"id":"c","given_at":1,"expires_at":2},"client":{"threads":2,"simd":true}}"#;
        assert!(matches!(classify_client_frame(hello), Ok(ClientMessage::Hello(_))));
        assert_eq!(classify_client_frame("{nope"), Err(ErrorCode::BadJson));
        assert_eq!(classify_client_frame(r#"{"type":"mine"}"#), Err(ErrorCode::UnknownType));
        assert_eq!(classify_client_frame(r#"{"type":"submit","job":"j"}"#), Err(ErrorCode::BadField));
        assert_eq!(classify_client_frame(r#"{"type":"ping","t":"soon"}"#), Err(ErrorCode::BadField));
        assert_eq!(classify_client_frame(r#"{"job":"j"}"#), Err(ErrorCode::BadField));
        assert_eq!(
            classify_client_frame(r#"{"type":"hello","v":1,"site":"s","user":"u"}"#),
            Err(ErrorCode::ConsentRequired)
        );
        assert_eq!(classify_client_frame(r#"[1,2]"#), Err(ErrorCode::BadField));
        let long = format!(r#"{{"type":"ping","t":1,"pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert_eq!(classify_client_frame(&long), Err(ErrorCode::FrameTooLarge));
    }

    #[test]
    fn nonces_are_exactly_eight_hex_digits() {
        assert_eq!(parse_nonce("7c2bac1d"), Ok(0x7c2b_ac1d));
        assert_eq!(parse_nonce(&format_nonce(0x0000_00ff)), Ok(0xff));
        // Either case is accepted (docs/PROTOCOL.md); the value, not the text, identifies a share.
        assert_eq!(parse_nonce("7C2BAC1D"), parse_nonce("7c2bac1d"));
        for bad in ["", "7c2bac1", "7c2bac1d0", "+c2bac1d", "7c2bac1g", " 7c2bac1"] {
            assert_eq!(parse_nonce(bad), Err(ErrorCode::BadNonce), "{bad:?}");
        }
    }

    #[test]
    fn every_error_code_parses_back_from_its_string() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "serde and as_str agree");
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn error_codes_serialise_as_their_documented_strings() {
        for code in [ErrorCode::BadJson, ErrorCode::AboveTarget, ErrorCode::TooManyConnections] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{}\"", code.as_str()));
        }
    }
}
