//! What the store keeps and hands out: sites, content items, shares on their way to the ledger,
//! pool submissions and answers, credits; and the small rules every writer shares (names, keys,
//! secrets stored as hashes).

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A site as the session layer needs it.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub enabled: bool,
    /// The longest consent lifetime a hello may present, in milliseconds.
    pub consent_max_ms: i64,
    /// The site secret sealed under the KEK (the key of user proofs); `None` for a site created
    /// before secrets were kept, until `site rotate-secret`.
    pub sealed_secret: Option<Vec<u8>>,
}

/// The consent maximum a site may set, in hours: an hour to a (leap) year.
pub const CONSENT_MAX_HOURS: std::ops::RangeInclusive<u32> = 1..=24 * 366;

/// A content item with its quota.
#[derive(Debug, Clone)]
pub struct Content {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub required: u128,
}

/// Credentials of a newly created site: the secret is shown once and stored only hashed.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub key: String,
    pub secret: String,
}

/// A verified share, ready to be written.
#[derive(Debug, Clone)]
pub struct ShareRecord {
    pub session: String,
    pub job_id: String,
    /// When the job was issued (Unix ms): the day the share belongs to in the share log (its
    /// partition on PostgreSQL). Fixed per job, so (job id, nonce, job time) is unique exactly when
    /// (job id, nonce) is.
    pub job_at: i64,
    pub nonce: u32,
    pub site_id: i64,
    /// The publisher's id for the user; the ledger row is created by the first committed share, so
    /// that a hello never writes (a storm of hellos must not queue behind fsyncs).
    pub user: String,
    pub content_id: Option<i64>,
    /// The full 80-byte header, nonce included.
    pub header: [u8; 80],
    /// The target the share was judged against, 32 bytes little-endian.
    pub target: [u8; 32],
    pub work: u128,
    /// Set when the share is forwarded to the upstream pool.
    pub pool: Option<PoolSubmission>,
}

/// What the ledger keeps of a share forwarded upstream (enough to resubmit or audit it).
#[derive(Debug, Clone)]
pub struct PoolSubmission {
    /// The pool's address (no credentials).
    pub pool: String,
    pub upstream_job: String,
    /// Hex, as submitted.
    pub extranonce2: String,
    pub ntime: u32,
    /// The pool's share target, 32 bytes little-endian.
    pub pool_target: [u8; 32],
    /// Expected hashes at the pool's target: what this share is worth to the pool.
    pub pool_work: u128,
}

/// The pool's answer to a forwarded share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAnswer {
    pub share_id: i64,
    /// `accepted`, `rejected` or `unanswered`.
    pub outcome: &'static str,
    pub code: Option<i64>,
    pub reason: Option<String>,
}

/// Pool-forwarded shares and the pool's verdicts, totalled (for status and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolTotals {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub unanswered: u64,
    /// Pool work of accepted shares, in expected hashes.
    pub accepted_work: u128,
}

/// What committing one share changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    /// Credited (as share row `share_id`); progress toward the session's content item if it has one,
    /// and the user's spendable credits after this batch.
    Credited { share_id: i64, progress: Option<ContentProgress>, credits: u128 },
    /// The ledger already had this (job, nonce): nothing credited.
    Duplicate,
}

/// Progress of one user toward one content item after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentProgress {
    pub content_id: i64,
    pub done: u128,
    pub required: u128,
    /// True exactly once: in the commit that first reached the quota.
    pub newly_unlocked: bool,
}

/// A day in Unix milliseconds: the share log's partitions are days (UTC) of the jobs' issue time.
pub const DAY_MS: i64 = 86_400_000;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    format!("{prefix}{}", hex::encode(buf))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Content keys appear in markup (`<minepass-gate content="…">`) and in the protocol: 1-64 characters
/// of ASCII letters, digits, `-`, `_` and `.`.
pub fn is_valid_content_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Names and titles: 1-200 characters, no control characters.
pub fn is_valid_label(text: &str) -> bool {
    (1..=200).contains(&text.chars().count()) && !text.chars().any(char::is_control)
}
