//! Process-wide counters exported at `/metrics` in the Prometheus text format. Plain atomics: the
//! hot path only increments.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

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

static UPSTREAM_CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static UPSTREAM_FAILURES: AtomicU64 = AtomicU64::new(0);
/// The newest pool difficulty, as f64 bits (a display value; targets are exact elsewhere).
static POOL_DIFFICULTY_BITS: AtomicU64 = AtomicU64::new(0);
static POOL_SUBMITTED: AtomicU64 = AtomicU64::new(0);
static POOL_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static POOL_UNANSWERED: AtomicU64 = AtomicU64::new(0);
static POOL_ACCEPTED_WORK_LOW: AtomicU64 = AtomicU64::new(0);
/// Pool rejections by Stratum error code (20-25; anything else counts as 20, "other").
static POOL_REJECTED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Recent samples for quantiles and the hash rate, kept small and behind one lock (the hot path
/// only pushes).
struct Recent {
    /// Microseconds from a browser share reaching the broker to its line written upstream.
    forward_us: VecDeque<u64>,
    /// (when, pool work) of accepted shares over the hash-rate window.
    accepted: VecDeque<(Instant, u128)>,
}

static RECENT: Mutex<Recent> = Mutex::new(Recent { forward_us: VecDeque::new(), accepted: VecDeque::new() });
const FORWARD_SAMPLES: usize = 10_000;
/// The broker's effective hash rate is pool-accepted work over this window.
const HASHRATE_WINDOW: Duration = Duration::from_secs(300);

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

pub fn upstream_connections(open: u64) {
    UPSTREAM_CONNECTIONS.store(open, Relaxed);
}

/// Every pool was tried and none could be used.
pub fn upstream_down() {
    UPSTREAM_FAILURES.fetch_add(1, Relaxed);
}

pub fn pool_difficulty(difficulty: f64) {
    POOL_DIFFICULTY_BITS.store(difficulty.to_bits(), Relaxed);
}

/// A share was written upstream, `added` after it reached the broker.
pub fn pool_submitted(added: Duration) {
    POOL_SUBMITTED.fetch_add(1, Relaxed);
    let mut recent = RECENT.lock().expect("metrics lock");
    if recent.forward_us.len() == FORWARD_SAMPLES {
        recent.forward_us.pop_front();
    }
    recent.forward_us.push_back(added.as_micros() as u64);
}

/// The pool's verdict on a forwarded share: `code` is `None` when accepted, `Some(code)` when
/// rejected; `unanswered` when no verdict came.
pub fn pool_answer(code: Option<i64>, unanswered: bool, pool_work: u128) {
    if unanswered {
        POOL_UNANSWERED.fetch_add(1, Relaxed);
        return;
    }
    match code {
        None => {
            POOL_ACCEPTED.fetch_add(1, Relaxed);
            POOL_ACCEPTED_WORK_LOW.fetch_add(pool_work as u64, Relaxed);
            let mut recent = RECENT.lock().expect("metrics lock");
            let now = Instant::now();
            while recent.accepted.front().is_some_and(|(t, _)| now.duration_since(*t) > HASHRATE_WINDOW) {
                recent.accepted.pop_front();
            }
            recent.accepted.push_back((now, pool_work));
        }
        Some(code) => {
            let index = if (20..=25).contains(&code) { (code - 20) as usize } else { 0 };
            POOL_REJECTED[index].fetch_add(1, Relaxed);
        }
    }
}

/// Pool-accepted work per second over the last window (hashes/s, an integer).
pub fn effective_hashrate() -> u128 {
    let recent = RECENT.lock().expect("metrics lock");
    let now = Instant::now();
    let work: u128 = recent
        .accepted
        .iter()
        .filter(|(t, _)| now.duration_since(*t) <= HASHRATE_WINDOW)
        .map(|(_, w)| w)
        .sum();
    work / u128::from(HASHRATE_WINDOW.as_secs())
}

/// Quantiles (0..=1) of the latency the broker adds to forwarded shares, in microseconds.
pub fn forward_latency_us(quantiles: &[f64]) -> Vec<u64> {
    let mut samples: Vec<u64> = RECENT.lock().expect("metrics lock").forward_us.iter().copied().collect();
    samples.sort_unstable();
    quantiles
        .iter()
        .map(
            |q| {
                if samples.is_empty() {
                    0
                } else {
                    samples[((samples.len() - 1) as f64 * q).round() as usize]
                }
            },
        )
        .collect()
}

/// One unlabelled metric in the exposition format.
fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// The Prometheus exposition text.
pub fn render() -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
        write_metric(&mut out, name, kind, help, value)
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
    render_upstream(&mut out);
    out
}

fn render_upstream(out: &mut String) {
    let mut metric = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
        write_metric(out, name, kind, help, value)
    };
    metric(
        "minepass_upstream_connections",
        "gauge",
        "Open, authorized connections to upstream pools (0: no pool, sessions are on the fallback).",
        &UPSTREAM_CONNECTIONS.load(Relaxed),
    );
    metric(
        "minepass_upstream_failures_total",
        "counter",
        "Times every configured pool was tried and none could be used.",
        &UPSTREAM_FAILURES.load(Relaxed),
    );
    metric(
        "minepass_pool_difficulty",
        "gauge",
        "The newest share difficulty set by the upstream pool.",
        &f64::from_bits(POOL_DIFFICULTY_BITS.load(Relaxed)),
    );
    metric(
        "minepass_pool_shares_submitted_total",
        "counter",
        "Shares forwarded to the upstream pool.",
        &POOL_SUBMITTED.load(Relaxed),
    );
    metric(
        "minepass_pool_shares_accepted_total",
        "counter",
        "Forwarded shares the pool accepted.",
        &POOL_ACCEPTED.load(Relaxed),
    );
    metric(
        "minepass_pool_shares_unanswered_total",
        "counter",
        "Forwarded shares with no answer (connection closed or timed out).",
        &POOL_UNANSWERED.load(Relaxed),
    );
    metric(
        "minepass_pool_accepted_work_hashes_total",
        "counter",
        "Expected hashes (at the pool's target) of pool-accepted shares.",
        &POOL_ACCEPTED_WORK_LOW.load(Relaxed),
    );
    metric(
        "minepass_effective_hashrate",
        "gauge",
        "Pool-accepted work per second over the last 5 minutes (hashes/s).",
        &effective_hashrate(),
    );
    let quantiles = forward_latency_us(&[0.5, 0.99]);
    let _ = writeln!(
        out,
        "# HELP minepass_pool_forward_latency_seconds Time from a browser share reaching the broker to its submit written upstream (last 10,000).\n# TYPE minepass_pool_forward_latency_seconds summary"
    );
    for (q, us) in ["0.5", "0.99"].iter().zip(quantiles) {
        let _ =
            writeln!(out, "minepass_pool_forward_latency_seconds{{quantile=\"{q}\"}} {:.6}", us as f64 / 1e6);
    }
    let _ = writeln!(
        out,
        "# HELP minepass_pool_shares_rejected_total Forwarded shares the pool rejected, by Stratum code."
    );
    let _ = writeln!(out, "# TYPE minepass_pool_shares_rejected_total counter");
    for (i, count) in POOL_REJECTED.iter().enumerate() {
        let _ = writeln!(
            out,
            "minepass_pool_shares_rejected_total{{code=\"{}\"}} {}",
            20 + i,
            count.load(Relaxed)
        );
    }
}

/// The operator's summary of a broker's `/metrics` text (what `minepass-broker status` prints).
pub fn status_report(metrics: &str) -> String {
    let value = |name: &str| {
        metrics
            .lines()
            .find(|line| line.split([' ', '{']).next() == Some(name) && !line.starts_with('#'))
            .and_then(|line| line.rsplit(' ').next())
            .unwrap_or("0")
            .to_owned()
    };
    let labelled = |name: &str| -> Vec<(String, String)> {
        metrics
            .lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .filter_map(|line| {
                let (labels, value) = line[name.len() + 1..].rsplit_once("} ")?;
                Some((labels.to_owned(), value.to_owned()))
            })
            .collect()
    };
    let mut out = String::new();
    let connections = value("minepass_upstream_connections");
    let state = if connections == "0" { "DOWN (sessions on the fallback)" } else { "up" };
    let _ = writeln!(out, "upstream:          {state}, {connections} connection(s)");
    for (labels, sessions) in labelled("minepass_upstream_connection_sessions") {
        let _ = writeln!(out, "  connection {labels}: {sessions} session(s)");
    }
    let _ = writeln!(out, "pool difficulty:   {}", value("minepass_pool_difficulty"));
    let _ = writeln!(
        out,
        "pool shares:       {} submitted, {} accepted, {} unanswered",
        value("minepass_pool_shares_submitted_total"),
        value("minepass_pool_shares_accepted_total"),
        value("minepass_pool_shares_unanswered_total")
    );
    let rejected: Vec<String> = labelled("minepass_pool_shares_rejected_total")
        .into_iter()
        .filter(|(_, count)| count != "0")
        .map(|(labels, count)| format!("{count} ({labels})"))
        .collect();
    let rejected = if rejected.is_empty() { "none".to_owned() } else { rejected.join(", ") };
    let _ = writeln!(out, "pool rejections:   {rejected}");
    let _ = writeln!(
        out,
        "effective rate:    {} H/s (pool-accepted work, last 5 min)",
        value("minepass_effective_hashrate")
    );
    let _ = writeln!(
        out,
        "browser shares:    {} accepted; {} sessions open",
        value("minepass_shares_accepted_total"),
        value("minepass_connections_open")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_report_reads_the_metrics_text() {
        pool_answer(None, false, 1 << 20);
        pool_answer(Some(23), false, 1 << 20);
        let text = render()
            + "minepass_upstream_connection_sessions{connection=\"1\",pool=\"stratum+tcp://p:1\"} 3\n";
        let report = status_report(&text);
        assert!(
            report.contains("connection connection=\"1\",pool=\"stratum+tcp://p:1\": 3 session(s)"),
            "{report}"
        );
        assert!(report.contains("code=\"23\""), "{report}");
        assert!(!report.contains("code=\"21\""), "zero counts are left out: {report}");
        assert!(report.contains("upstream:          DOWN"), "{report}");
    }
}
