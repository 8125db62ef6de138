//! Process-wide counters exported at `/metrics` in the Prometheus text format. Plain atomics: the
//! hot path only increments.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use minepass::protocol::ErrorCode;

static CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_TOTAL: AtomicU64 = AtomicU64::new(0);
static SHARES_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static WORK_ACCEPTED_LOW: AtomicU64 = AtomicU64::new(0);
static COMMITS: AtomicU64 = AtomicU64::new(0);
static COMMIT_MICROS: AtomicU64 = AtomicU64::new(0);
static COMMITTED_SHARES: AtomicU64 = AtomicU64::new(0);

const REJECT_CODES: [ErrorCode; 5] = [
    ErrorCode::BadNonce,
    ErrorCode::AboveTarget,
    ErrorCode::Duplicate,
    ErrorCode::StaleJob,
    ErrorCode::UnknownJob,
];
static REJECTED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

pub fn connection_opened() {
    CONNECTIONS_OPEN.fetch_add(1, Relaxed);
    CONNECTIONS_TOTAL.fetch_add(1, Relaxed);
}

pub fn connection_closed() {
    CONNECTIONS_OPEN.fetch_sub(1, Relaxed);
}

pub fn share_accepted(work: u128) {
    SHARES_ACCEPTED.fetch_add(1, Relaxed);
    // Work counter in hashes; wraps after 2^64 hashes, which Prometheus treats as a counter reset.
    WORK_ACCEPTED_LOW.fetch_add(work as u64, Relaxed);
}

pub fn share_rejected(code: ErrorCode) {
    if let Some(i) = REJECT_CODES.iter().position(|c| *c == code) {
        REJECTED[i].fetch_add(1, Relaxed);
    }
}

pub fn commit_latency(elapsed: Duration, shares: usize) {
    COMMITS.fetch_add(1, Relaxed);
    COMMIT_MICROS.fetch_add(elapsed.as_micros() as u64, Relaxed);
    COMMITTED_SHARES.fetch_add(shares as u64, Relaxed);
}

/// The Prometheus exposition text.
pub fn render() -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric(
        "minepass_connections_open",
        "gauge",
        "Open WebSocket connections.",
        &CONNECTIONS_OPEN.load(Relaxed),
    );
    metric(
        "minepass_connections_total",
        "counter",
        "WebSocket connections accepted.",
        &CONNECTIONS_TOTAL.load(Relaxed),
    );
    metric(
        "minepass_shares_accepted_total",
        "counter",
        "Shares verified and durably credited.",
        &SHARES_ACCEPTED.load(Relaxed),
    );
    metric(
        "minepass_work_accepted_hashes_total",
        "counter",
        "Expected hashes of accepted shares; the hash rate is rate() of this.",
        &WORK_ACCEPTED_LOW.load(Relaxed),
    );
    metric("minepass_ledger_commits_total", "counter", "Share batches committed.", &COMMITS.load(Relaxed));
    metric(
        "minepass_ledger_commit_seconds_sum",
        "counter",
        "Time spent committing share batches.",
        &format_args!("{:.6}", COMMIT_MICROS.load(Relaxed) as f64 / 1e6),
    );
    metric(
        "minepass_ledger_committed_shares_total",
        "counter",
        "Shares written by committed batches.",
        &COMMITTED_SHARES.load(Relaxed),
    );
    let _ = writeln!(out, "# HELP minepass_shares_rejected_total Shares rejected, by reason.");
    let _ = writeln!(out, "# TYPE minepass_shares_rejected_total counter");
    for (code, count) in REJECT_CODES.iter().zip(&REJECTED) {
        let _ = writeln!(out, "minepass_shares_rejected_total{{reason=\"{code}\"}} {}", count.load(Relaxed));
    }
    out
}
