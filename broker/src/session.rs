//! The session layer: one WebSocket connection's state machine. It validates `hello` (version, site,
//! consent), owns the session's jobs and vardiff, and turns verified shares into durable credits.
//! It knows nothing of HTTP or sockets: [`Session::on_text`] takes a frame and returns replies.

use std::sync::Arc;

use minepass::protocol::{
    self, ClientMessage, ErrorCode, Hello, PROTOCOL_VERSION, Progress, ServerMessage, Welcome, Work, WorkMode,
};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::estimate::{self, RateMeter};
use crate::identity;

use crate::metrics;
use crate::store::{
    Committer, Content, Credit, Ledger, PoolAnswer, PoolSubmission, ShareRecord, Site, now_ms,
};
use crate::tokens::Tokens;
use crate::work::upstream::Answer;
use crate::work::{IssuedJob, Jobs, SessionWork, Vardiff};

/// How often a broker makes share partitions ahead and applies retention.
const SHARE_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// State shared by every session.
pub struct Broker {
    pub ledger: Ledger,
    pub committer: Committer,
    pub jobs: Jobs,
    pub vardiff: Vardiff,
    pub tokens: Tokens,
    pub rate_limit: RateLimit,
    /// Most WebSocket connections one IP address may hold.
    pub max_connections_per_address: u32,
    /// Proxies (a fleet's load balancer) whose `X-Forwarded-For` names the visitor.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Days of raw shares to keep; older days are retired hourly (PostgreSQL). `None`: keep all.
    pub share_retention_days: Option<u32>,
    connections: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
    /// Cancelled when the broker shuts down: sockets close with [`CLOSE_GOING_AWAY`].
    pub stopping: CancellationToken,
    /// Every task the broker started for its sessions (sockets, pool-answer waiters): shutdown
    /// waits for them.
    pub tasks: TaskTracker,
    /// `POST /api/v1/consent` requests per address: a burst of 10, then one every 6 s.
    consent_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Key for resume tokens.
    resume_key: [u8; 32],
}

impl Broker {
    pub fn new(ledger: Ledger, jobs: Jobs, vardiff: Vardiff, tokens: Tokens) -> Broker {
        let committer = Committer::spawn(ledger.clone());
        // Derived from the KEK, never stored: every broker sharing the key accepts the same resume
        // tokens, across restarts.
        let resume_key = ledger.vault().derive("resume-token");
        Broker {
            ledger,
            committer,
            jobs,
            vardiff,
            tokens,
            rate_limit: RateLimit { per_second: 20, burst: 40 },
            max_connections_per_address: 32,
            trusted_proxies: Vec::new(),
            share_retention_days: None,
            connections: Default::default(),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            consent_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::new(10).expect("10 > 0"),
            )),
            resume_key,
        }
    }

    /// Rereads the signing keys every [`KEY_REFRESH_INTERVAL`] until shutdown, so that a rotation
    /// by another broker (or the CLI) on a shared ledger is published here too.
    ///
    /// [`KEY_REFRESH_INTERVAL`]: crate::tokens::KEY_REFRESH_INTERVAL
    pub fn spawn_key_refresh(self: &Arc<Self>) {
        let broker = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(crate::tokens::KEY_REFRESH_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = broker.stopping.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(error) = broker.tokens.refresh(&broker.ledger, true).await {
                    tracing::warn!("rereading the signing keys failed: {error:#}");
                }
            }
        });
    }

    /// Hourly until shutdown: makes the share log's partitions for the days ahead and, with
    /// [`Broker::share_retention_days`], retires the days past it (brokers of a fleet take turns on
    /// the database's lock; whoever comes second finds nothing left to do).
    pub fn spawn_share_upkeep(self: &Arc<Self>) {
        let broker = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(SHARE_UPKEEP_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = broker.stopping.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(error) = broker.ledger.prepare_share_partitions().await {
                    tracing::warn!("making the share log's partitions failed: {error:#}");
                }
                let Some(keep_days) = broker.share_retention_days else { continue };
                match broker.ledger.retain_shares(keep_days).await {
                    Ok(report) => {
                        for day in &report.rolled_up {
                            tracing::info!(day = day.day, shares = day.shares, "share log day rolled up");
                        }
                        if let Some((day, why)) = report.kept {
                            tracing::info!(day, "share log day kept: {why}");
                        }
                    }
                    Err(error) => tracing::warn!("share retention failed: {error:#}"),
                }
            }
        });
    }

    /// Shuts down in order, losing nothing acknowledged: sockets finish the frame in hand (an ack is
    /// sent only after its commit) and close with 1001; pool lanes write what is queued and wait up
    /// to their drain timeout for the pool's answers; the answer waiters record what came; then the
    /// committer commits everything queued.
    pub async fn drain(&self) {
        self.stopping.cancel();
        self.tasks.close();
        if let Some(upstream) = self.jobs.upstream() {
            upstream.shutdown().await;
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tasks.wait()).await.is_err() {
            tracing::warn!("{} session tasks still running after {DRAIN_TIMEOUT:?}", self.tasks.len());
        }
        self.committer.flush().await;
        tracing::info!("drained: every acknowledged share and received pool answer is committed");
    }

    /// Whether `address` may post another consent answer now (the per-address rate limit).
    pub fn consent_answers_allowed(&self, address: std::net::IpAddr) -> bool {
        // Addresses that went quiet are forgotten, so the table stays bounded.
        if self.consent_limiter.len() > 10_000 {
            self.consent_limiter.retain_recent();
        }
        self.consent_limiter.check_key(&address).is_ok()
    }

    /// Counts a new connection from `address`; `None` if it already has the maximum.
    pub fn admit(self: &Arc<Self>, address: std::net::IpAddr) -> Option<ConnectionSlot> {
        let mut connections = self.connections.lock().expect("connections lock");
        let count = connections.entry(address).or_insert(0);
        if *count >= self.max_connections_per_address {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { broker: Arc::clone(self), address })
    }

    /// The `unlock` for a quota that is met and durably credited: a fresh token and, for sealed
    /// content, its keys (they travel in nothing else).
    async fn unlock(
        &self,
        site: &Site,
        user: &str,
        content: &Content,
        work: u128,
        credits: u128,
    ) -> ServerMessage {
        let (token, claims) = self.tokens.issue(user, &site.key, &content.key, work, credits);
        let keys = self.ledger.content_keys(content.id).await.unwrap_or_else(|error| {
            // The token still lets a publisher's server deliver the content; the gate says it could
            // not open the sealed copy.
            tracing::error!(content = %content.key, "cannot open the content keys: {error:#}");
            Vec::new()
        });
        tracing::info!(site = %site.key, user, content = %content.key, jti = %claims.jti, sealed = !keys.is_empty(), "content unlocked");
        ServerMessage::Unlock { content: content.key.clone(), token, keys }
    }

    /// A resume token names a session and is bound to the site and user it was issued to.
    fn resume_token(&self, session: &str, site: &str, user: &str) -> String {
        let mac = Sha256::new()
            .chain_update(self.resume_key)
            .chain_update(format!("{session}\n{site}\n{user}"))
            .finalize();
        format!("{session}.{}", hex::encode(&mac[..16]))
    }

    /// The session id a resume token names, if the token is genuine and was issued to this user.
    fn resumed_session(&self, token: &str, site: &str, user: &str) -> Option<String> {
        let (session, _) = token.split_once('.')?;
        let valid = session.len() == 16 && session.bytes().all(|b| b.is_ascii_hexdigit());
        (valid && self.resume_token(session, site, user) == token).then(|| session.to_owned())
    }
}

/// One admitted connection; frees its address's slot when dropped.
pub struct ConnectionSlot {
    broker: Arc<Broker>,
    address: std::net::IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut connections = self.broker.connections.lock().expect("connections lock");
        if let Some(count) = connections.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                connections.remove(&self.address);
            }
        }
    }
}

/// How far in the future a consent record's `given_at` may be: the visitor's clock may run ahead.
pub const CONSENT_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// WebSocket close code when the broker shuts down (RFC 6455: going away): the SDK reconnects, to
/// another broker of a fleet, and resumes.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Longest wait at shutdown for session tasks after the pool lanes have ended.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// WebSocket close code after a fatal protocol error (RFC 6455: policy violation).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code after sustained flooding past the rate limit.
pub const CLOSE_RATE_LIMITED: u16 = 4029;
/// Close code when an address already has the maximum number of connections.
pub const CLOSE_TOO_MANY_CONNECTIONS: u16 = 4031;

/// Per-connection message budget: a token bucket of `burst` messages refilled at `per_second`.
/// Messages past the budget are refused with `rate_limited`; a client still sending after `burst`
/// refusals is disconnected with [`CLOSE_RATE_LIMITED`].
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

struct Bucket {
    limit: RateLimit,
    tokens: f64,
    refused: u32,
    last: std::time::Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Bucket {
        Bucket { limit, tokens: f64::from(limit.burst), refused: 0, last: std::time::Instant::now() }
    }

    /// Whether one more message fits the budget now.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(self.limit.per_second);
        self.tokens = (self.tokens + refill).min(f64::from(self.limit.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// What the transport should do after a frame.
#[derive(Debug, Default)]
pub struct Replies {
    pub messages: Vec<ServerMessage>,
    /// Close the connection with this WebSocket close code after sending `messages`.
    pub close: Option<u16>,
}

impl Replies {
    fn one(message: ServerMessage) -> Replies {
        Replies { messages: vec![message], close: None }
    }

    fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Replies {
        Replies {
            messages: vec![ServerMessage::Error { code, message: message.into(), fatal }],
            close: fatal.then_some(CLOSE_POLICY),
        }
    }
}

struct Open {
    site: Site,
    user: String,
    content: Option<Content>,
    work: SessionWork,
    /// The device class the client reported (`estimate::class_key`) and the rate its verified shares
    /// show, filed when the session ends.
    device: String,
    meter: RateMeter,
}

/// One connection's session.
pub struct Session {
    broker: Arc<Broker>,
    open: Option<Open>,
    bucket: Bucket,
}

impl Session {
    pub fn new(broker: Arc<Broker>) -> Session {
        let bucket = Bucket::new(broker.rate_limit);
        Session { broker, open: None, bucket }
    }

    /// The connection ended: the rate its verified shares showed is filed under its device class
    /// for the consent dialog's estimate (sessions too short to say file nothing).
    pub async fn finish(self) {
        let Some(open) = self.open else { return };
        let Some(rate) = open.meter.rate() else { return };
        if let Err(error) = self.broker.ledger.record_device_rate(&open.device, rate).await {
            tracing::warn!("device rate not recorded: {error:#}");
        }
    }

    /// Applies the rate limit to one incoming frame: `Some` replies when it is refused.
    fn over_limit(&mut self) -> Option<Replies> {
        if self.bucket.take() {
            return None;
        }
        let fatal = self.bucket.refused > self.broker.rate_limit.burst;
        let mut replies = Replies::error(ErrorCode::RateLimited, "too many messages: slow down", fatal);
        replies.close = fatal.then_some(CLOSE_RATE_LIMITED);
        Some(replies)
    }

    /// Handles one text frame.
    pub async fn on_text(&mut self, text: &str) -> Replies {
        if let Some(refused) = self.over_limit() {
            return refused;
        }
        match protocol::classify_client_frame(text) {
            Err(code) => Replies::error(code, describe(code), false),
            Ok(ClientMessage::Ping { t }) => Replies::one(ServerMessage::Pong { t }),
            Ok(ClientMessage::Hello(hello)) => {
                if self.open.is_some() {
                    return Replies::error(
                        ErrorCode::AlreadyHello,
                        "this session has already said hello",
                        false,
                    );
                }
                match self.hello(hello).await {
                    Ok(replies) => replies,
                    Err(replies) => replies,
                }
            }
            Ok(ClientMessage::Submit(submit)) => self.submit(&submit.job, &submit.nonce).await,
            Ok(ClientMessage::More { job }) => self.more(&job),
        }
    }

    /// Binary frames are not part of the protocol.
    pub fn on_binary(&mut self) -> Replies {
        if let Some(refused) = self.over_limit() {
            return refused;
        }
        Replies::error(ErrorCode::BinaryFrame, describe(ErrorCode::BinaryFrame), false)
    }

    async fn hello(&mut self, hello: Hello) -> Result<Replies, Replies> {
        let fatal = |code: ErrorCode, message: &str| Replies::error(code, message, true);
        if hello.v != PROTOCOL_VERSION {
            return Err(fatal(
                ErrorCode::UnsupportedVersion,
                &format!("this broker speaks protocol {PROTOCOL_VERSION}"),
            ));
        }
        if hello.user.as_deref().is_some_and(|user| !identity::is_valid_user(user)) {
            return Err(fatal(
                ErrorCode::BadField,
                "user must be 1-128 bytes of UTF-8 without control characters",
            ));
        }
        if hello.client.threads == 0 || hello.client.threads > 1024 {
            return Err(fatal(ErrorCode::BadField, "client.threads must be 1-1024"));
        }
        let consent = &hello.consent;
        let now = now_ms();
        let valid_consent = !consent.id.is_empty()
            && consent.id.len() <= 64
            && consent.given_at <= consent.expires_at
            && consent.expires_at as i64 > now
            && consent.given_at as i64 <= now.saturating_add(CONSENT_CLOCK_SKEW_MS);
        if !valid_consent {
            return Err(fatal(
                ErrorCode::ConsentRequired,
                "a current consent record is required before any work (given_at no later than now, \
                 expires_at later)",
            ));
        }
        let internal = |e: anyhow::Error| {
            tracing::error!("hello failed: {e:#}");
            fatal(ErrorCode::Internal, "the broker could not open the session")
        };
        let site = match self.broker.ledger.site_by_key(&hello.site).await.map_err(internal)? {
            None => return Err(fatal(ErrorCode::UnknownSite, "no site has this key")),
            Some(site) if !site.enabled => {
                return Err(fatal(ErrorCode::SiteDisabled, "this site is disabled"));
            }
            Some(site) => site,
        };
        if (consent.expires_at - consent.given_at) as i64 > site.consent_max_ms {
            return Err(fatal(
                ErrorCode::ConsentRequired,
                &format!("this site accepts consent for at most {} hours", site.consent_max_ms / 3_600_000),
            ));
        }
        let (user, issued_secret) =
            self.prove_user(&site, &hello).map_err(|(code, message)| fatal(code, &message))?;
        let contents = self.broker.ledger.content(site.id).await.map_err(internal)?;
        let content = match &hello.content {
            None => None,
            Some(key) => match contents.iter().find(|c| &c.key == key) {
                Some(c) => Some(c.clone()),
                None => {
                    return Err(fatal(ErrorCode::BadField, "content is not an item of this site"));
                }
            },
        };
        let done = self.broker.ledger.progress(site.id, &user).await.map_err(internal)?;
        let progress: Vec<Progress> = contents
            .iter()
            .map(|c| Progress {
                content: c.key.clone(),
                done: Work(done.iter().find(|(id, _)| *id == c.id).map_or(0, |(_, w)| *w)),
                required: Work(c.required),
            })
            .collect();

        let session = hello
            .resume
            .as_deref()
            .and_then(|token| self.broker.resumed_session(token, &site.key, &user))
            .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
        // Job ids must never repeat, even for a resumed session: add a per-connection part.
        let connection = hex::encode(rand::random::<[u8; 3]>());
        let mut work =
            SessionWork::new(format!("{session}.{connection}"), self.broker.vardiff, hello.gate_only);
        let hashrate = hello.client.hashrate.unwrap_or(u64::from(hello.client.threads) * 1_000_000);
        let job =
            job_message(work.issue(&self.broker.jobs, self.broker.vardiff.work_for(u128::from(hashrate))));
        let credits = self.broker.ledger.credits(site.id, &user).await.map_err(internal)?;
        let welcome = Welcome {
            v: PROTOCOL_VERSION,
            session: session.clone(),
            resume: self.broker.resume_token(&session, &site.key, &user),
            mode: work.current().map_or(WorkMode::Paused, |j| j.mode),
            share_interval_ms: self.broker.vardiff.interval.as_millis() as u64,
            progress,
            credits: Work(credits),
            user: user.clone(),
            user_secret: issued_secret,
        };
        tracing::info!(site = %site.key, %user, %session, consent = %consent.id, "session opened");
        let mut messages = vec![ServerMessage::Welcome(welcome), job];
        // Already unlocked (an earlier visit, or a reconnect that missed the unlock): a fresh token.
        if let Some(content) = &content {
            let done = done.iter().find(|(id, _)| *id == content.id).map_or(0, |(_, w)| *w);
            if done >= content.required {
                messages.push(self.broker.unlock(&site, &user, content, done, credits).await);
            }
        }
        let device =
            estimate::class_key(hello.client.engine.as_deref(), hello.client.cores, hello.client.simd);
        let meter = RateMeter::new(self.broker.vardiff.interval);
        self.open = Some(Open { site, user, content, work, device, meter });
        Ok(Replies { messages, close: None })
    }

    /// The user id this hello proves, and the secret of a newly issued anonymous identity. Nothing
    /// of an existing user is reached without its proof.
    fn prove_user(
        &self,
        site: &Site,
        hello: &Hello,
    ) -> Result<(String, Option<String>), (ErrorCode, String)> {
        let refuse = |message: &str| Err((ErrorCode::BadUserProof, message.to_owned()));
        match (&hello.user, &hello.user_proof, &hello.user_secret) {
            (None, None, None) => {
                let (user, secret) = identity::new_anonymous(&site.key);
                Ok((user, Some(secret)))
            }
            (None, _, _) => Err((ErrorCode::BadField, "user_proof and user_secret belong to a user".into())),
            (Some(user), None, Some(secret)) if identity::is_anonymous(user) => {
                if identity::is_anonymous_secret(&site.key, user, secret) {
                    Ok((user.clone(), None))
                } else {
                    refuse("the secret does not match this anonymous id")
                }
            }
            (Some(user), _, _) if identity::is_anonymous(user) => {
                refuse("an anonymous id (anon_…) is proven by its user_secret alone")
            }
            (Some(user), Some(proof), None) => {
                let secret = match self.broker.ledger.site_secret(site) {
                    Ok(Some(secret)) => secret,
                    Ok(None) => {
                        return refuse(
                            "this site has no user-proof key yet: its operator runs \
                             `minepass-broker site rotate-secret`",
                        );
                    }
                    Err(error) => {
                        tracing::error!("cannot open the site secret of {}: {error:#}", site.key);
                        return Err((ErrorCode::Internal, "the broker could not check the proof".into()));
                    }
                };
                match identity::check_user_proof(&secret, &site.key, user, proof, now_ms() / 1000) {
                    Ok(()) => Ok((user.clone(), None)),
                    Err(error) => refuse(error.describe()),
                }
            }
            (Some(_), None, None) => {
                refuse("a publisher's user id needs the user_proof its server minted (docs/SDK.md)")
            }
            (Some(_), _, Some(_)) => refuse("user_secret proves anonymous ids (anon_…) only"),
        }
    }

    /// A fresh job at the current work when the client has exhausted the current one.
    fn more(&mut self, job_id: &str) -> Replies {
        let Some(open) = self.open.as_mut() else {
            return Replies::error(ErrorCode::HelloRequired, describe(ErrorCode::HelloRequired), false);
        };
        let Some(work) = open.work.current().filter(|j| j.id == job_id).map(|j| j.work) else {
            // An answer to an older job crossed a newer one on the wire: the client already has work.
            return Replies::error(
                ErrorCode::StaleJob,
                "more work was asked for a job that is not current",
                false,
            );
        };
        Replies::one(job_message(open.work.issue(&self.broker.jobs, work)))
    }

    /// Ticks when work may have changed for every session (a new upstream job, a pool lost or back).
    pub fn work_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.broker.jobs.changes()
    }

    /// Work changed: a session whose job is no longer what the source hands out gets a new one at
    /// once (after a clean job its old jobs are stale), or is told to wait when there is none.
    pub fn on_work_changed(&mut self) -> Replies {
        let Some(open) = self.open.as_mut() else { return Replies::default() };
        if open.work.gate_only() || self.broker.jobs.is_fresh(open.work.current()) {
            return Replies::default();
        }
        let work = open.work.current().map_or(self.broker.vardiff.min_work, |j| j.work);
        Replies::one(job_message(open.work.issue(&self.broker.jobs, work)))
    }

    async fn submit(&mut self, job_id: &str, nonce: &str) -> Replies {
        let received = std::time::Instant::now();
        let Some(open) = self.open.as_mut() else {
            return Replies::error(ErrorCode::HelloRequired, describe(ErrorCode::HelloRequired), false);
        };
        let rejected = |code: ErrorCode| {
            metrics::share_rejected(code);
            Replies::one(ServerMessage::Rejected { job: job_id.to_owned(), nonce: nonce.to_owned(), code })
        };
        let share = match open.work.verify(&self.broker.jobs, job_id, nonce) {
            Ok(share) => share,
            Err(code) => return rejected(code),
        };
        let record = ShareRecord {
            session: open.work.id().to_owned(),
            job_id: share.job_id.clone(),
            job_at: share.job_at,
            nonce: share.nonce,
            site_id: open.site.id,
            user: open.user.clone(),
            content_id: open.content.as_ref().map(|c| c.id),
            header: share.header,
            target: share.target.to_le_bytes(),
            work: share.work,
            pool: share.forward.as_ref().map(|pool| PoolSubmission {
                pool: self.broker.jobs.pool_name(pool.job.pool),
                upstream_job: pool.job.notify.job_id.clone(),
                extranonce2: hex::encode(&pool.extranonce2),
                ntime: pool.ntime,
                pool_target: pool.job.target.to_le_bytes(),
                pool_work: pool.job.target.expected_hashes(),
            }),
        };
        let credit = match self.broker.committer.credit(record).await {
            Ok(credit) => credit,
            Err(error) => {
                tracing::error!("share not credited: {error:#}");
                return Replies::error(
                    ErrorCode::Internal,
                    "the share could not be recorded; nothing was credited",
                    false,
                );
            }
        };
        let Credit::Credited { share_id, progress, credits } = credit else {
            return rejected(ErrorCode::Duplicate);
        };
        metrics::share_accepted(share.work);
        open.meter.share(received, share.work);
        // Durable first, then upstream: a share the pool accepts is always in the ledger.
        if let (Some(pool), Some(upstream)) = (&share.forward, self.broker.jobs.upstream()) {
            let answer = upstream.submit(pool, share.nonce, received);
            let committer = self.broker.committer.clone();
            let pool_work = pool.job.target.expected_hashes();
            self.broker.tasks.spawn(async move {
                let answer =
                    answer.await.unwrap_or(Answer::Unanswered { reason: "no answer in time".into() });
                let (outcome, code, reason) = match answer {
                    Answer::Accepted => ("accepted", None, None),
                    Answer::Rejected { code, reason } => ("rejected", Some(code), Some(reason)),
                    Answer::Unanswered { reason } => ("unanswered", None, Some(reason)),
                };
                metrics::pool_answer(code, outcome == "unanswered", pool_work);
                committer.record_answer(PoolAnswer { share_id, outcome, code, reason }).await;
            });
        }
        let mut replies = Replies::one(ServerMessage::Accepted {
            job: job_id.to_owned(),
            nonce: nonce.to_owned(),
            work: Work(share.work),
            credits: Work(credits),
        });
        if let (Some(progress), Some(content)) = (progress, &open.content) {
            replies.messages.push(ServerMessage::Progress(Progress {
                content: content.key.clone(),
                done: Work(progress.done),
                required: Work(progress.required),
            }));
            if progress.newly_unlocked {
                replies
                    .messages
                    .push(self.broker.unlock(&open.site, &open.user, content, progress.done, credits).await);
            }
        }
        if let Some(work) = open.work.record(share.work) {
            replies.messages.push(job_message(open.work.issue(&self.broker.jobs, work)));
        }
        replies
    }
}

/// A newly issued job, or `wait` when there is no work.
fn job_message(job: Option<&IssuedJob>) -> ServerMessage {
    match job {
        Some(job) => ServerMessage::Job(job.to_message()),
        None => ServerMessage::Wait { reason: "upstream_unavailable".into() },
    }
}

fn describe(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadJson => "the frame is not valid JSON",
        ErrorCode::BinaryFrame => "binary frames are not part of the protocol",
        ErrorCode::FrameTooLarge => "the frame is too large",
        ErrorCode::UnknownType => "unknown message type",
        ErrorCode::BadField => "a field is missing or has the wrong type",
        ErrorCode::HelloRequired => "send hello first",
        _ => "request refused",
    }
}
