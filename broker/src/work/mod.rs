//! The work layer: where jobs come from, how each session's share target follows its hash rate
//! (vardiff), and how every share is verified.
//!
//! [`Jobs`] is what the session layer asks for work: gate-mode headers ([`GateJobs`]) or real block
//! templates from the Stratum [`upstream`], with the configured fallback while no pool has work. The
//! session never knows how a header was made; it gets a mode and, for pool work, what the share
//! needs to be forwarded.

pub mod stratum;
pub mod upstream;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minepass::baseline::sha256d;
use minepass::protocol::{self, ErrorCode, WorkMode};
use minepass::target::Target;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use upstream::{Fallback, Lease, PoolWork, Upstream};

/// Gate mode: synthetic headers from a per-broker secret, a session id and a counter. Proof of work for
/// unlocks only; no coin is mined.
pub struct GateJobs {
    secret: [u8; 32],
    counter: std::sync::atomic::AtomicU64,
}

impl GateJobs {
    pub fn new() -> GateJobs {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        GateJobs { secret, counter: Default::default() }
    }

    /// A fresh header template (nonce bytes zero), distinct for every call.
    pub fn template(&self, session: &str) -> [u8; 80] {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
        // "prev hash" and "merkle root" are keyed hashes of (session, counter): unique and unpredictable.
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(session.as_bytes());
        h.update(n.to_le_bytes());
        let a = h.finalize();
        header[4..36].copy_from_slice(&a);
        header[36..68].copy_from_slice(&Sha256::digest(a));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        header[68..72].copy_from_slice(&(now.as_secs() as u32).to_le_bytes());
        header[72..76].copy_from_slice(&0x1d00_ffffu32.to_le_bytes());
        header
    }
}

impl Default for GateJobs {
    fn default() -> Self {
        GateJobs::new()
    }
}

/// Where sessions get headers.
pub struct Jobs {
    gate: GateJobs,
    upstream: Option<Arc<Upstream>>,
    /// Never changes in gate mode; kept so every session can wait on one channel either way.
    idle: watch::Sender<u64>,
}

/// A header for a session, with its origin.
pub struct Template {
    pub header: [u8; 80],
    pub mode: WorkMode,
    /// For pool work: what forwarding a share needs.
    pub pool: Option<PoolWork>,
}

impl Jobs {
    /// Gate mode only.
    pub fn gate() -> Jobs {
        Jobs { gate: GateJobs::new(), upstream: None, idle: watch::channel(0).0 }
    }

    /// Pool work from `upstream`, and its configured fallback while it has none.
    pub fn pool(upstream: Arc<Upstream>) -> Jobs {
        Jobs { gate: GateJobs::new(), upstream: Some(upstream), idle: watch::channel(0).0 }
    }

    /// The address of upstream pool `index`, for the ledger.
    pub fn pool_name(&self, index: usize) -> String {
        self.upstream().and_then(|u| u.config().pools.get(index)).map_or_else(String::new, |p| p.display())
    }

    pub fn upstream(&self) -> Option<&Arc<Upstream>> {
        self.upstream.as_ref()
    }

    /// The mode a new session would get now.
    pub fn mode(&self) -> WorkMode {
        match &self.upstream {
            Some(upstream) if upstream.has_work() => WorkMode::Pool,
            Some(upstream) if upstream.config().fallback == Fallback::Pause => WorkMode::Paused,
            _ => WorkMode::Gate,
        }
    }

    /// Ticks whenever sessions may need new work (a new upstream job, a pool down or back).
    pub fn changes(&self) -> watch::Receiver<u64> {
        match &self.upstream {
            Some(upstream) => upstream.changes(),
            None => self.idle.subscribe(),
        }
    }

    /// A header for `session`; `None` when there is no work (pools down, fallback `pause`).
    pub fn template(&self, session: &str, lease: &mut Option<Lease>) -> Option<Template> {
        if let Some(upstream) = &self.upstream {
            // Without work, `work` has given back the lease too.
            if let Some((pool, header)) = upstream.work(lease) {
                return Some(Template { header, mode: WorkMode::Pool, pool: Some(pool) });
            }
            if upstream.config().fallback == Fallback::Pause {
                return None;
            }
        }
        Some(self.gate_template(session))
    }

    /// A synthetic header for `session`, whatever the upstream has (proof-of-work-only sessions).
    pub fn gate_template(&self, session: &str) -> Template {
        Template { header: self.gate.template(session), mode: WorkMode::Gate, pool: None }
    }

    /// Whether a job's header is still worth mining (gate work always is; pool work until its
    /// connection closes or a clean job replaces it).
    fn is_live(&self, job: &IssuedJob) -> bool {
        match (&job.pool, &self.upstream) {
            (Some(pool), Some(upstream)) => upstream.is_live(&pool.job),
            _ => true,
        }
    }

    /// Whether `job` (a session's newest) is what the source would hand out now; if not, the session
    /// should get new work.
    pub fn is_fresh(&self, job: Option<&IssuedJob>) -> bool {
        let Some(job) = job else { return self.mode() == WorkMode::Paused };
        match (&job.pool, &self.upstream) {
            (Some(pool), Some(upstream)) => upstream.is_newest(&pool.job),
            (None, Some(upstream)) => !upstream.has_work(),
            (_, None) => true,
        }
    }
}

/// Vardiff settings.
#[derive(Debug, Clone, Copy)]
pub struct Vardiff {
    /// The share interval to aim at.
    pub interval: Duration,
    /// Smallest and largest work per share.
    pub min_work: u128,
    pub max_work: u128,
}

impl Vardiff {
    /// Work per share for a client hashing at `hashrate` per second: rate × interval, rounded down to a
    /// power of two (so targets are simple and retargets are at least 2×), clamped.
    pub fn work_for(&self, hashrate: u128) -> u128 {
        let ideal = hashrate.saturating_mul(self.interval.as_millis()) / 1000;
        let clamped = ideal.clamp(self.min_work, self.max_work);
        1u128 << (127 - clamped.leading_zeros())
    }
}

/// A job handed to a session.
#[derive(Debug, Clone)]
pub struct IssuedJob {
    pub id: String,
    pub header: [u8; 80],
    pub target: Target,
    pub work: u128,
    pub mode: WorkMode,
    pub pool: Option<PoolWork>,
    /// When it was issued (Unix ms): its shares' day in the share log.
    pub issued_at: i64,
}

impl IssuedJob {
    pub fn to_message(&self) -> protocol::Job {
        protocol::Job {
            id: self.id.clone(),
            header: hex::encode(self.header),
            target: hex::encode(self.target.to_le_bytes()),
            work: protocol::Work(self.work),
            mode: self.mode,
        }
    }
}

/// A share that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedShare {
    pub job_id: String,
    /// The job's issue time (Unix ms).
    pub job_at: i64,
    pub nonce: u32,
    pub header: [u8; 80],
    pub target: Target,
    pub work: u128,
    /// Pool work whose hash also meets the pool's target: to be submitted upstream.
    pub forward: Option<PoolWork>,
}

/// How many recent jobs still accept shares: the current one and the one it replaced, so shares in
/// flight across a retarget are not lost.
const LIVE_JOBS: usize = 2;

/// One session's jobs, duplicate filter and hash-rate estimate.
pub struct SessionWork {
    session: String,
    vardiff: Vardiff,
    counter: u64,
    live: VecDeque<IssuedJob>,
    /// Ids of jobs that no longer accept shares (bounded: the oldest are forgotten).
    retired: VecDeque<String>,
    seen: HashSet<(String, u32)>,
    /// The session's slot of an upstream connection's extranonce space (pool work only).
    lease: Option<Lease>,
    /// The client asked for proof of work only (`hello.gate_only`): gate headers, never pool work.
    gate_only: bool,
    window_start: Instant,
    window_work: u128,
    window_shares: u32,
}

impl SessionWork {
    pub fn new(session: String, vardiff: Vardiff, gate_only: bool) -> SessionWork {
        SessionWork {
            session,
            vardiff,
            gate_only,
            counter: 0,
            live: VecDeque::new(),
            retired: VecDeque::new(),
            seen: HashSet::new(),
            lease: None,
            window_start: Instant::now(),
            window_work: 0,
            window_shares: 0,
        }
    }

    /// The session id this work belongs to (with its per-connection part).
    pub fn id(&self) -> &str {
        &self.session
    }

    /// Whether this session only ever gets gate work.
    pub fn gate_only(&self) -> bool {
        self.gate_only
    }

    /// The newest job, the one the client should be working on.
    pub fn current(&self) -> Option<&IssuedJob> {
        self.live.back()
    }

    fn retire(&mut self, job: IssuedJob) {
        self.seen.retain(|(id, _)| id != &job.id);
        self.retired.push_back(job.id);
        if self.retired.len() > 64 {
            self.retired.pop_front();
        }
    }

    /// Retires every live job that is no longer worth mining (its upstream job was replaced by a
    /// clean one, or its connection closed), so their shares are refused as stale.
    fn retire_dead(&mut self, jobs: &Jobs) {
        let (keep, dead): (Vec<IssuedJob>, Vec<IssuedJob>) =
            std::mem::take(&mut self.live).into_iter().partition(|job| jobs.is_live(job));
        self.live = keep.into();
        for job in dead {
            self.retire(job);
        }
    }

    /// Issues a new job at `work` per share from `jobs`; the oldest live job retires. `None` when
    /// there is no work (every live job is then retired: the client is told to wait).
    pub fn issue(&mut self, jobs: &Jobs, work: u128) -> Option<&IssuedJob> {
        let template = match self.gate_only {
            true => Some(jobs.gate_template(&self.session)),
            false => jobs.template(&self.session, &mut self.lease),
        };
        let Some(template) = template else {
            for job in std::mem::take(&mut self.live) {
                self.retire(job);
            }
            return None;
        };
        self.counter += 1;
        self.live.push_back(IssuedJob {
            id: format!("{}.{}", self.session, self.counter),
            header: template.header,
            target: Target::from_expected_hashes(work),
            work,
            mode: template.mode,
            pool: template.pool,
            issued_at: crate::store::now_ms(),
        });
        self.retire_dead(jobs);
        while self.live.len() > LIVE_JOBS {
            let old = self.live.pop_front().expect("non-empty");
            self.retire(old);
        }
        self.live.back()
    }

    /// Checks a submitted share: the job is live, the nonce is new for it, and sha256d of the header
    /// with that nonce is at or below the job's target. Nothing changes when it fails.
    pub fn verify(&mut self, jobs: &Jobs, job_id: &str, nonce_hex: &str) -> Result<VerifiedShare, ErrorCode> {
        let nonce = protocol::parse_nonce(nonce_hex)?;
        let Some(job) = self.live.iter().find(|j| j.id == job_id) else {
            return Err(if self.retired.iter().any(|id| id == job_id) {
                ErrorCode::StaleJob
            } else {
                ErrorCode::UnknownJob
            });
        };
        if !jobs.is_live(job) {
            return Err(ErrorCode::StaleJob);
        }
        if self.seen.contains(&(job.id.clone(), nonce)) {
            return Err(ErrorCode::Duplicate);
        }
        let mut header = job.header;
        header[76..].copy_from_slice(&nonce.to_le_bytes());
        let hash = sha256d(&header);
        if !job.target.is_met_by(&hash) {
            return Err(ErrorCode::AboveTarget);
        }
        let forward = job.pool.as_ref().filter(|pool| pool.job.target.is_met_by(&hash)).cloned();
        let share = VerifiedShare {
            job_id: job.id.clone(),
            job_at: job.issued_at,
            nonce,
            header,
            target: job.target,
            work: job.work,
            forward,
        };
        self.seen.insert((share.job_id.clone(), nonce));
        Ok(share)
    }

    /// Records an accepted share; returns the work per share for a new job when the session's measured
    /// rate is off the target interval by more than 2× (after at least 4 shares or 4 intervals).
    pub fn record(&mut self, work: u128) -> Option<u128> {
        self.window_work += work;
        self.window_shares += 1;
        let elapsed = self.window_start.elapsed();
        if self.window_shares < 4 && elapsed < self.vardiff.interval * 4 {
            return None;
        }
        let rate = self.window_work * 1000 / elapsed.as_millis().max(1);
        let next = self.vardiff.work_for(rate);
        let current = self.live.back().map_or(next, |j| j.work);
        self.window_start = Instant::now();
        self.window_work = 0;
        self.window_shares = 0;
        (next >= current * 2 || next * 2 <= current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minepass::kernel::Job;

    fn vardiff() -> Vardiff {
        Vardiff { interval: Duration::from_secs(4), min_work: 1 << 10, max_work: 1 << 60 }
    }

    fn find_share(job: &IssuedJob) -> u32 {
        let kernel_job = Job::new(&job.header, job.target).unwrap();
        let mut hits = Vec::new();
        let mut start = 0u32;
        while hits.is_empty() {
            kernel_job.scan(start, 1 << 16, &mut hits).unwrap();
            start += 1 << 16;
        }
        hits[0]
    }

    #[test]
    fn work_per_share_follows_the_hash_rate_in_powers_of_two() {
        let v = vardiff();
        assert_eq!(v.work_for(1_000_000), 1 << 21); // 4 M hashes -> 2^21 (2,097,152 <= 4,000,000 < 2^22)
        assert_eq!(v.work_for(0), 1 << 10);
        assert_eq!(v.work_for(u128::MAX), 1 << 60);
    }

    #[test]
    fn gate_templates_are_distinct_per_request() {
        let source = GateJobs::new();
        let a = source.template("s1");
        let b = source.template("s1");
        let c = source.template("s2");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(&a[76..], &[0; 4]);
    }

    #[test]
    fn a_share_verifies_once_and_every_failure_has_its_code() {
        let source = Jobs::gate();
        let mut work = SessionWork::new("s".into(), vardiff(), false);
        let job = work.issue(&source, 1 << 12).unwrap().clone();
        assert_eq!(job.mode, WorkMode::Gate);
        let nonce = find_share(&job);
        let hex = protocol::format_nonce(nonce);
        assert_eq!(work.verify(&source, &job.id, "xyz").unwrap_err(), ErrorCode::BadNonce);
        assert_eq!(work.verify(&source, "s.99", &hex).unwrap_err(), ErrorCode::UnknownJob);
        // A nonce whose hash is above the target (the neighbour of a share, almost surely).
        let above = (0..).map(|i| nonce.wrapping_add(i + 1)).find(|&n| {
            let mut h = job.header;
            h[76..].copy_from_slice(&n.to_le_bytes());
            !job.target.is_met_by(&sha256d(&h))
        });
        assert_eq!(
            work.verify(&source, &job.id, &protocol::format_nonce(above.unwrap())).unwrap_err(),
            ErrorCode::AboveTarget
        );
        let share = work.verify(&source, &job.id, &hex).unwrap();
        assert_eq!(share.work, 1 << 12);
        assert!(job.target.is_met_by(&sha256d(&share.header)));
        assert_eq!(work.verify(&source, &job.id, &hex).unwrap_err(), ErrorCode::Duplicate);
        // Two newer jobs retire this one: its shares are now stale.
        work.issue(&source, 1 << 12);
        assert_eq!(work.verify(&source, &job.id, &hex).unwrap_err(), ErrorCode::Duplicate);
        work.issue(&source, 1 << 12);
        assert_eq!(work.verify(&source, &job.id, &hex).unwrap_err(), ErrorCode::StaleJob);
    }
}
