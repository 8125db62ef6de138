//! The Stratum v1 upstream: connections to real pools, in priority order with failover, and the
//! split of each connection's extranonce2 space among browser sessions.
//!
//! Every browser session leases a *slot* of one connection: the high bytes of extranonce2. It rolls
//! the low bytes (`roll_bytes`) itself, one value per job it is given, so no two sessions (and no two
//! jobs of one session) ever search the same header. A slot given back is reused only after the next
//! `clean_jobs`, when every header it could have searched is void. A connection serves
//! `256^(extranonce2_size − roll_bytes)` sessions (or the configured cap); when every connection is
//! full, another one is opened.
//!
//! A connection task owns its socket: it handshakes (`mining.configure`, `mining.subscribe`,
//! `mining.extranonce.subscribe`, `mining.authorize`), publishes jobs into the shared [`State`] and
//! writes the submits sessions hand it. Sessions learn about new jobs through a watch channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use minepass::target::Target;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{Framed, LinesCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::stratum::{self, Incoming, Notify, PoolError};
use crate::metrics;

/// One pool: `stratum+tcp://host:port` with its worker credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl PoolConfig {
    /// Parses `stratum+tcp://user:password@host:port` (user and password may also be given apart).
    pub fn parse(url: &str) -> Result<PoolConfig> {
        let rest = url
            .strip_prefix("stratum+tcp://")
            .with_context(|| format!("pool URL {url:?} must start with stratum+tcp://"))?;
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let (user, password) = match credentials {
            Some(c) => c.split_once(':').map_or((c, "x"), |(u, p)| (u, p)),
            None => ("minepass", "x"),
        };
        let address = address.trim_end_matches('/');
        let (host, port) =
            address.rsplit_once(':').with_context(|| format!("pool URL {url:?} needs host:port"))?;
        let port = port.parse().with_context(|| format!("pool URL {url:?}: bad port"))?;
        if host.is_empty() || user.is_empty() {
            bail!("pool URL {url:?} needs a host and a user");
        }
        Ok(PoolConfig { host: host.to_owned(), port, user: user.to_owned(), password: password.to_owned() })
    }

    /// The pool's address without credentials, for logs and status.
    pub fn display(&self) -> String {
        format!("stratum+tcp://{}:{}", self.host, self.port)
    }
}

/// What sessions get while no pool has work for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// Gate-mode work: unlocks keep working, no coin is mined.
    Gate,
    /// No work: the SDK pauses until a pool is back.
    Pause,
}

/// Upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// In priority order: the first reachable one is used, and the broker returns to a better one
    /// when it comes back.
    pub pools: Vec<PoolConfig>,
    pub fallback: Fallback,
    /// Bytes of extranonce2 a session rolls itself (one value per job it is given).
    pub roll_bytes: usize,
    /// Fewer sessions per connection than the extranonce2 space allows (tests, or pools that limit
    /// work per connection).
    pub max_sessions_per_connection: Option<u64>,
    /// Most connections opened at once.
    pub max_connections: usize,
    /// A pool silent for this long is presumed dead (they send jobs at least every minute or two).
    pub idle_timeout: Duration,
    /// A submit not answered within this is recorded as unanswered.
    pub submit_timeout: Duration,
    /// At shutdown, how long a connection waits for the answers to what it submitted.
    pub drain_timeout: Duration,
    /// While on a fallback pool, how often the better ones are probed.
    pub failback_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl UpstreamConfig {
    pub fn new(pools: Vec<PoolConfig>) -> UpstreamConfig {
        UpstreamConfig {
            pools,
            fallback: Fallback::Gate,
            roll_bytes: 2,
            max_sessions_per_connection: None,
            max_connections: 16,
            idle_timeout: Duration::from_secs(180),
            submit_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            failback_interval: Duration::from_secs(30),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// A job as one connection received it, with the share target in force when it arrived (jobs keep
/// the difficulty they were issued at).
#[derive(Debug)]
pub struct UpstreamJob {
    pub connection: u64,
    /// Counts this connection's `clean_jobs`; a job of an older generation is stale.
    pub generation: u64,
    pub pool: usize,
    pub notify: Notify,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub difficulty: f64,
    pub target: Target,
}

/// What a session mines for the pool: an upstream job and the extranonce2/ntime of its header.
#[derive(Debug, Clone)]
pub struct PoolWork {
    pub job: Arc<UpstreamJob>,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
}

/// How the pool answered a forwarded share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    Rejected {
        code: i64,
        reason: String,
    },
    /// No answer: the connection closed or the answer was too late. The outcome is unknown.
    Unanswered {
        reason: String,
    },
}

struct Submit {
    job_id: String,
    extranonce2: String,
    ntime: String,
    nonce: String,
    queued: Instant,
    reply: oneshot::Sender<Answer>,
}

/// A session's slot of one connection's extranonce2 space; given back when dropped.
pub struct Lease {
    upstream: Arc<Upstream>,
    connection: u64,
    slot: u64,
    /// Next roll value, and the generation it counts in.
    roll: u64,
    generation: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.upstream.state.lock().expect("upstream state");
        if let Some(connection) = state.connections.iter_mut().find(|c| c.id == self.connection) {
            connection.leased -= 1;
            connection.quarantine.push(self.slot);
        }
    }
}

struct Connection {
    id: u64,
    pool: usize,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    generation: u64,
    job: Option<Arc<UpstreamJob>>,
    /// Slots in the space, the next never used, slots given back since the last clean job, and
    /// slots free to lease again.
    slots: u64,
    next_slot: u64,
    quarantine: Vec<u64>,
    free: Vec<u64>,
    leased: u64,
    submits: mpsc::Sender<Submit>,
}

impl Connection {
    fn has_room(&self) -> bool {
        self.next_slot < self.slots || !self.free.is_empty()
    }
}

#[derive(Default)]
struct State {
    connections: Vec<Connection>,
    next_id: u64,
}

/// Operator-facing facts about one connection.
#[derive(Debug, Clone)]
pub struct ConnectionStatus {
    pub id: u64,
    pub pool: String,
    pub difficulty: Option<f64>,
    pub sessions: u64,
    pub capacity: u64,
    pub job: Option<String>,
}

/// The upstream job source.
pub struct Upstream {
    config: UpstreamConfig,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    wanted: AtomicU64,
    more: tokio::sync::Notify,
    /// Cancelled by [`Upstream::shutdown`]: lanes finish their in-flight submits and end.
    stopping: CancellationToken,
    /// The connection manager and every lane.
    lanes: TaskTracker,
}

impl Upstream {
    /// Starts connecting to the pools (in the background) and returns at once.
    pub fn start(config: UpstreamConfig) -> Arc<Upstream> {
        assert!(!config.pools.is_empty(), "an upstream needs at least one pool");
        let upstream = Arc::new(Upstream {
            config,
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            wanted: AtomicU64::new(1),
            more: tokio::sync::Notify::new(),
            stopping: CancellationToken::new(),
            lanes: TaskTracker::new(),
        });
        upstream.lanes.spawn(manage(Arc::clone(&upstream)));
        upstream
    }

    /// Stops every lane: no new connections; each open one writes what is queued, waits up to
    /// `drain_timeout` for the pool's answers to what it submitted, answers the rest `unanswered`,
    /// and closes. Returns when all lanes have ended.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        self.lanes.close();
        let grace = self.config.drain_timeout + Duration::from_secs(2);
        if tokio::time::timeout(grace, self.lanes.wait()).await.is_err() {
            tracing::warn!("upstream lanes did not end within {grace:?}");
        }
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Changes whenever work changes: a new job, a connection up or down.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Whether any connection has a job.
    pub fn has_work(&self) -> bool {
        self.state.lock().expect("upstream state").connections.iter().any(|c| c.job.is_some())
    }

    /// Whether shares of `job` are still wanted: its connection is up and no clean job replaced it.
    pub fn is_live(&self, job: &UpstreamJob) -> bool {
        let state = self.state.lock().expect("upstream state");
        state.connections.iter().any(|c| c.id == job.connection && c.generation == job.generation)
    }

    /// Whether `job` is still the newest job of its connection.
    pub fn is_newest(&self, job: &Arc<UpstreamJob>) -> bool {
        let state = self.state.lock().expect("upstream state");
        state
            .connections
            .iter()
            .find(|c| c.id == job.connection)
            .and_then(|c| c.job.as_ref())
            .is_some_and(|newest| Arc::ptr_eq(newest, job))
    }

    /// Work for a session: a header from its lease's connection, taking a lease (on the best pool
    /// with room) when it has none or its connection went away. `None` when no pool has work.
    pub fn work(self: &Arc<Self>, lease: &mut Option<Lease>) -> Option<(PoolWork, [u8; 80])> {
        let mut state = self.state.lock().expect("upstream state");
        let valid = lease
            .as_ref()
            .is_some_and(|l| state.connections.iter().any(|c| c.id == l.connection && c.job.is_some()));
        if !valid {
            // Dropping a lease locks the state: release it first.
            if let Some(old) = lease.take() {
                drop(state);
                drop(old);
                state = self.state.lock().expect("upstream state");
            }
            let best = state
                .connections
                .iter_mut()
                .filter(|c| c.job.is_some() && c.has_room())
                .min_by_key(|c| (c.pool, c.id));
            match best {
                Some(connection) => {
                    let slot = connection.free.pop().unwrap_or_else(|| {
                        connection.next_slot += 1;
                        connection.next_slot - 1
                    });
                    connection.leased += 1;
                    *lease = Some(Lease {
                        upstream: Arc::clone(self),
                        connection: connection.id,
                        slot,
                        roll: 0,
                        generation: connection.generation,
                    });
                    if !connection.has_room() {
                        self.want_more(&state);
                    }
                }
                None => {
                    if state.connections.iter().any(|c| c.job.is_some()) {
                        self.want_more(&state);
                    }
                    return None;
                }
            }
        }
        let lease = lease.as_mut().expect("leased above");
        let connection = state.connections.iter().find(|c| c.id == lease.connection).expect("valid lease");
        let job = Arc::clone(connection.job.as_ref().expect("connection has a job"));
        if lease.generation != connection.generation {
            lease.generation = connection.generation;
            lease.roll = 0;
        }
        let roll_bytes = self.config.roll_bytes.min(job.extranonce2_size);
        let rolls = 1u64 << (8 * roll_bytes as u32).min(63);
        // Past the roll space (tens of thousands of jobs in one block), ntime moves on a second.
        let ntime = job.notify.ntime.wrapping_add((lease.roll / rolls) as u32);
        let value = (u128::from(lease.slot) << (8 * roll_bytes)) | u128::from(lease.roll % rolls);
        lease.roll += 1;
        let extranonce2 = value.to_be_bytes()[16 - job.extranonce2_size..].to_vec();
        let header = job.notify.header(&job.extranonce1, &extranonce2, ntime);
        Some((PoolWork { job, extranonce2, ntime }, header))
    }

    fn want_more(&self, state: &State) {
        let open = state.connections.len() as u64;
        if open >= self.wanted.load(Relaxed) && (open as usize) < self.config.max_connections {
            self.wanted.store(open + 1, Relaxed);
            self.more.notify_one();
        }
    }

    /// Submits a share of `work` (the header's nonce) to the pool that issued it. The answer arrives
    /// on the receiver. `received` is when the browser's share reached the broker: the connection
    /// task records the time from then to the line written upstream (the latency the broker adds).
    pub fn submit(&self, work: &PoolWork, nonce: u32, received: Instant) -> oneshot::Receiver<Answer> {
        let (reply, answer) = oneshot::channel();
        let sender = {
            let state = self.state.lock().expect("upstream state");
            state.connections.iter().find(|c| c.id == work.job.connection).map(|c| c.submits.clone())
        };
        let submit = Submit {
            job_id: work.job.notify.job_id.clone(),
            extranonce2: hex::encode(&work.extranonce2),
            ntime: stratum::format_u32_be(work.ntime),
            nonce: stratum::format_u32_be(nonce),
            queued: received,
            reply,
        };
        match sender {
            Some(sender) => {
                if let Err(
                    mpsc::error::TrySendError::Full(submit) | mpsc::error::TrySendError::Closed(submit),
                ) = sender.try_send(submit)
                {
                    let _ =
                        submit.reply.send(Answer::Unanswered { reason: "connection busy or closed".into() });
                }
            }
            None => {
                let _ = submit.reply.send(Answer::Unanswered { reason: "connection closed".into() });
            }
        }
        answer
    }

    /// Every open connection, for `/metrics` and `status`.
    pub fn status(&self) -> Vec<ConnectionStatus> {
        let state = self.state.lock().expect("upstream state");
        state
            .connections
            .iter()
            .map(|c| ConnectionStatus {
                id: c.id,
                pool: self.config.pools[c.pool].display(),
                difficulty: c.job.as_ref().map(|j| j.difficulty),
                sessions: c.leased,
                capacity: c.slots,
                job: c.job.as_ref().map(|j| j.notify.job_id.clone()),
            })
            .collect()
    }

    /// Per-connection lines for `/metrics`.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::from(
            "# HELP minepass_upstream_connection_sessions Browser sessions on one upstream connection (capacity: its extranonce2 space).\n# TYPE minepass_upstream_connection_sessions gauge\n",
        );
        let status = self.status();
        for c in &status {
            let _ = writeln!(
                out,
                "minepass_upstream_connection_sessions{{connection=\"{}\",pool=\"{}\",capacity=\"{}\",difficulty=\"{}\"}} {}",
                c.id,
                c.pool,
                c.capacity,
                c.difficulty.unwrap_or(0.0),
                c.sessions
            );
        }
        out
    }

    fn register(
        &self,
        pool: usize,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        submits: mpsc::Sender<Submit>,
    ) -> u64 {
        let mut state = self.state.lock().expect("upstream state");
        state.next_id += 1;
        let id = state.next_id;
        let slot_bytes = extranonce2_size.saturating_sub(self.config.roll_bytes) as u32;
        let space = if slot_bytes >= 8 { u64::MAX } else { 1u64 << (8 * slot_bytes) };
        let slots = self.config.max_sessions_per_connection.map_or(space, |cap| cap.clamp(1, space));
        state.connections.push(Connection {
            id,
            pool,
            extranonce1,
            extranonce2_size,
            generation: 0,
            job: None,
            slots,
            next_slot: 0,
            quarantine: Vec::new(),
            free: Vec::new(),
            leased: 0,
            submits,
        });
        metrics::upstream_connections(state.connections.len() as u64);
        id
    }

    fn unregister(&self, id: u64) {
        let mut state = self.state.lock().expect("upstream state");
        state.connections.retain(|c| c.id != id);
        metrics::upstream_connections(state.connections.len() as u64);
        drop(state);
        self.changed();
    }

    fn publish(&self, id: u64, notify: Notify, difficulty: f64, target: Target) {
        let mut state = self.state.lock().expect("upstream state");
        let Some(connection) = state.connections.iter_mut().find(|c| c.id == id) else { return };
        if notify.clean || connection.job.is_none() {
            connection.generation += 1;
            let quarantined = std::mem::take(&mut connection.quarantine);
            connection.free.extend(quarantined);
        }
        connection.job = Some(Arc::new(UpstreamJob {
            connection: id,
            generation: connection.generation,
            pool: connection.pool,
            notify,
            extranonce1: connection.extranonce1.clone(),
            extranonce2_size: connection.extranonce2_size,
            difficulty,
            target,
        }));
        metrics::pool_difficulty(difficulty);
        drop(state);
        self.changed();
    }
}

/// Opens connections: one at first, another each time every open one is full.
async fn manage(upstream: Arc<Upstream>) {
    let mut lanes = 0u64;
    loop {
        while lanes < upstream.wanted.load(Relaxed) {
            lanes += 1;
            upstream.lanes.spawn(run_lane(Arc::clone(&upstream), lanes));
        }
        tokio::select! {
            () = upstream.more.notified() => {}
            () = upstream.stopping.cancelled() => return,
        }
    }
}

/// One connection slot, kept connected forever: the best reachable pool, backing off when none is.
async fn run_lane(upstream: Arc<Upstream>, lane: u64) {
    let mut backoff = upstream.config.backoff_min;
    while !upstream.stopping.is_cancelled() {
        let mut worked = false;
        for index in 0..upstream.config.pools.len() {
            let pool = &upstream.config.pools[index];
            match connect(&upstream, index).await {
                Ok(ended) => {
                    tracing::warn!(lane, pool = %pool.display(), "upstream connection ended: {ended}");
                    worked = true;
                    break;
                }
                Err(error) => {
                    tracing::warn!(lane, pool = %pool.display(), "upstream unavailable: {error:#}");
                }
            }
        }
        let pause = if worked {
            backoff = upstream.config.backoff_min;
            upstream.config.backoff_min
        } else {
            metrics::upstream_down();
            let jitter = Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1));
            let pause = backoff + jitter;
            backoff = (backoff * 2).min(upstream.config.backoff_max);
            pause
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = upstream.stopping.cancelled() => return,
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Submits written and not yet answered, per connection. Pools read a line at a time and some drop a
/// client whose unread bytes pass a limit (NOMP-derived pools: 10 KB, about 70 submits), so a burst
/// of browser shares queues here instead of flooding the pool.
const MAX_IN_FLIGHT: usize = 32;
const ID_CONFIGURE: u64 = 1;
const ID_SUBSCRIBE: u64 = 2;
const ID_EXTRANONCE: u64 = 3;
const ID_AUTHORIZE: u64 = 4;

type Lines = Framed<TcpStream, LinesCodec>;

async fn send(lines: &mut Lines, id: u64, method: &str, params: Value) -> Result<()> {
    lines.send(stratum::request(id, method, params)).await.context("writing to the pool")
}

async fn next_line(lines: &mut Lines) -> Result<String> {
    match lines.next().await {
        Some(Ok(line)) => Ok(line),
        Some(Err(error)) => Err(anyhow!("reading from the pool: {error}")),
        None => Err(anyhow!("the pool closed the connection")),
    }
}

/// Connects to pool `index`, handshakes, and serves until the connection ends. `Err` when it never
/// became usable (so the next pool is tried); `Ok(why)` when it had been up.
async fn connect(upstream: &Arc<Upstream>, index: usize) -> Result<String> {
    let pool = &upstream.config.pools[index];
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((pool.host.as_str(), pool.port)))
        .await
        .context("connect timed out")?
        .context("connect")?;
    stream.set_nodelay(true)?;
    // TCP keepalive finds a dead path even when the pool has nothing to say.
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(stratum::MAX_LINE));

    // BIP 310: configure first. Browsers roll only the nonce, so version rolling is asked with no
    // required bits; pools that do not know the method answer with an error, which is fine.
    send(
        &mut lines,
        ID_CONFIGURE,
        "mining.configure",
        json!([["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 0}]),
    )
    .await?;
    send(
        &mut lines,
        ID_SUBSCRIBE,
        "mining.subscribe",
        json!([concat!("minepass-broker/", env!("CARGO_PKG_VERSION"))]),
    )
    .await?;
    send(&mut lines, ID_EXTRANONCE, "mining.extranonce.subscribe", json!([])).await?;
    send(&mut lines, ID_AUTHORIZE, "mining.authorize", json!([pool.user, pool.password])).await?;

    let mut subscribed = None;
    let mut authorized = false;
    let mut difficulty: Option<(f64, Target)> = None;
    let mut early_jobs = Vec::new();
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    while subscribed.is_none() || !authorized {
        let line = tokio::time::timeout_at(deadline, next_line(&mut lines))
            .await
            .context("handshake timed out")??;
        match Incoming::parse(&line)? {
            Incoming::Response { id: ID_SUBSCRIBE, result, error } => {
                if let Some(error) = error {
                    bail!("subscribe refused: {}", error.message);
                }
                subscribed = Some(stratum::parse_subscribe(&result)?);
            }
            Incoming::Response { id: ID_AUTHORIZE, result, error } => {
                if error.is_some() || result != Value::Bool(true) {
                    bail!("worker {:?} not authorized", pool.user);
                }
                authorized = true;
            }
            Incoming::Response { id: ID_CONFIGURE, result, .. } => {
                tracing::debug!(pool = %pool.display(), "configure: {result}");
            }
            Incoming::Response { .. } => {}
            Incoming::Call { method, params, .. } => match method.as_str() {
                "mining.set_difficulty" => difficulty = Some(stratum::parse_difficulty(&params)?),
                "mining.notify" => early_jobs.push(Notify::parse(&params)?),
                _ => {}
            },
        }
    }
    let (mut extranonce1, mut extranonce2_size) = subscribed.expect("loop ends subscribed");
    if extranonce2_size <= upstream.config.roll_bytes
        && upstream.config.max_sessions_per_connection != Some(1)
    {
        tracing::warn!(
            pool = %pool.display(),
            "extranonce2 is only {extranonce2_size} bytes: one session per connection"
        );
    }
    let (submit_tx, mut submit_rx) = mpsc::channel::<Submit>(4096);
    let mut id = upstream.register(index, extranonce1.clone(), extranonce2_size, submit_tx.clone());
    tracing::info!(pool = %pool.display(), connection = id, extranonce1 = %hex::encode(&extranonce1), extranonce2_size, "upstream connected");
    let mut difficulty = difficulty.unwrap_or((1.0, Target::DIFF1));
    if let Some(job) = early_jobs.pop() {
        upstream.publish(id, job, difficulty.0, difficulty.1);
    }

    let mut pending: HashMap<u64, (Instant, oneshot::Sender<Answer>)> = HashMap::new();
    let mut next_id = ID_AUTHORIZE + 1;
    let mut pending_extranonce: Option<(Vec<u8>, usize)> = None;
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_probe = Instant::now();
    // Set when the broker shuts down: from then on the connection only finishes what it has.
    let mut draining: Option<Instant> = None;
    let ended = loop {
        if let Some(deadline) = draining {
            if pending.is_empty() && submit_rx.is_empty() {
                break "the broker is shutting down".to_owned();
            }
            if Instant::now() >= deadline {
                break "the broker is shutting down (drain timeout)".to_owned();
            }
        }
        tokio::select! {
            () = upstream.stopping.cancelled(), if draining.is_none() => {
                draining = Some(Instant::now() + upstream.config.drain_timeout);
            }
            line = next_line(&mut lines) => {
                let line = match line {
                    Ok(line) => line,
                    Err(error) => break error.to_string(),
                };
                last_heard = Instant::now();
                let message = match Incoming::parse(&line) {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!(pool = %pool.display(), "ignoring a line from the pool: {error}");
                        continue;
                    }
                };
                match message {
                    Incoming::Response { id: request, result, error } => {
                        if let Some((_, reply)) = pending.remove(&request) {
                            let answer = match error {
                                None if result == Value::Bool(true) => Answer::Accepted,
                                None => Answer::Rejected { code: 20, reason: format!("result {result}") },
                                Some(PoolError { code, message }) => Answer::Rejected { code, reason: message },
                            };
                            let _ = reply.send(answer);
                        }
                    }
                    Incoming::Call { id: call_id, method, params } => match method.as_str() {
                        "mining.set_difficulty" => match stratum::parse_difficulty(&params) {
                            Ok(new) => difficulty = new,
                            Err(error) => tracing::warn!(pool = %pool.display(), "bad set_difficulty: {error}"),
                        },
                        "mining.notify" => match Notify::parse(&params) {
                            Ok(notify) => {
                                if let Some((en1, en2_size)) = pending_extranonce.take() {
                                    // The new extranonce applies from this job on: a new connection
                                    // identity, so every old lease and job is retired.
                                    upstream.unregister(id);
                                    (extranonce1, extranonce2_size) = (en1, en2_size);
                                    id = upstream.register(index, extranonce1.clone(), extranonce2_size, submit_tx.clone());
                                }
                                upstream.publish(id, notify, difficulty.0, difficulty.1);
                            }
                            Err(error) => tracing::warn!(pool = %pool.display(), "bad notify: {error}"),
                        },
                        "mining.set_extranonce" => match stratum::parse_set_extranonce(&params) {
                            Ok(new) => pending_extranonce = Some(new),
                            Err(error) => tracing::warn!(pool = %pool.display(), "bad set_extranonce: {error}"),
                        },
                        "client.reconnect" => break "the pool asked for a reconnect".to_owned(),
                        "client.get_version" => {
                            if let Some(call_id) = call_id {
                                let reply = json!({"id": call_id, "result": concat!("minepass-broker/", env!("CARGO_PKG_VERSION")), "error": null});
                                if lines.send(reply.to_string()).await.is_err() {
                                    break "writing to the pool failed".to_owned();
                                }
                            }
                        }
                        "client.show_message" => tracing::info!(pool = %pool.display(), "pool says: {params}"),
                        other => tracing::debug!(pool = %pool.display(), "ignoring {other}"),
                    },
                }
            }
            Some(submit) = submit_rx.recv(), if pending.len() < MAX_IN_FLIGHT => {
                let request = next_id;
                next_id += 1;
                let params = json!([pool.user, submit.job_id, submit.extranonce2, submit.ntime, submit.nonce]);
                if send(&mut lines, request, "mining.submit", params).await.is_err() {
                    let _ = submit.reply.send(Answer::Unanswered { reason: "writing to the pool failed".into() });
                    break "writing to the pool failed".to_owned();
                }
                metrics::pool_submitted(submit.queued.elapsed());
                pending.insert(request, (Instant::now(), submit.reply));
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > upstream.config.idle_timeout {
                    break format!("the pool was silent for {:?}", upstream.config.idle_timeout);
                }
                let timeout = upstream.config.submit_timeout;
                pending.retain(|_, (sent, _)| sent.elapsed() < timeout);
                if index > 0 && last_probe.elapsed() >= upstream.config.failback_interval {
                    last_probe = Instant::now();
                    if better_pool_is_up(upstream, index).await {
                        break "a higher-priority pool is back".to_owned();
                    }
                }
            }
        }
    };
    upstream.unregister(id);
    // Dropped senders tell the waiting sessions their shares went unanswered.
    for (_, (_, reply)) in pending.drain() {
        let _ = reply.send(Answer::Unanswered { reason: format!("connection ended: {ended}") });
    }
    Ok(ended)
}

/// Whether one of the pools ranked above `index` accepts TCP connections again.
async fn better_pool_is_up(upstream: &Upstream, index: usize) -> bool {
    for pool in &upstream.config.pools[..index] {
        let attempt = TcpStream::connect((pool.host.as_str(), pool.port));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_urls_parse_with_and_without_credentials() {
        let pool = PoolConfig::parse("stratum+tcp://bc1q.worker1:secret@pool.example:3333").unwrap();
        assert_eq!(
            pool,
            PoolConfig {
                host: "pool.example".into(),
                port: 3333,
                user: "bc1q.worker1".into(),
                password: "secret".into()
            }
        );
        assert_eq!(pool.display(), "stratum+tcp://pool.example:3333");
        let bare = PoolConfig::parse("stratum+tcp://127.0.0.1:3333").unwrap();
        assert_eq!((bare.user.as_str(), bare.password.as_str()), ("minepass", "x"));
        for bad in ["http://x:1", "stratum+tcp://host", "stratum+tcp://host:port", "stratum+tcp://:1"] {
            assert!(PoolConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
