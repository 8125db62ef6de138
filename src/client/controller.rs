//! The SDK's side of the broker protocol as a pure state machine: it takes broker frames, worker
//! reports and timings, and returns [`Command`]s (frames to send, work for the workers, events for the
//! page). The browser layer performs them; tests drive this directly.

#[cfg(test)]
use serde::Serialize;

use crate::json::Object;
use crate::protocol::{
    self, ClientInfo, ClientMessage, Consent, ContentKey, ErrorCode, Hello, PROTOCOL_VERSION, ServerMessage,
    Submit, Work, WorkMode,
};

/// What the browser layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send this message to the broker.
    Send(ClientMessage),
    /// Search this job: every worker restarts on its own part of the nonce space.
    Mine(protocol::Job),
    /// Tell the page.
    Emit(Event),
    /// The broker has no work for now: stop the workers until the next `Mine`.
    Wait,
    /// The broker refused the session for good (a fatal error): close and do not reconnect.
    Shutdown,
}

/// Events for the page (`MinePass.on(type, …)`), serialised with their `type` by [`Event::to_json`]
/// (serde's derived form is the reference it is tested against).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(Serialize), serde(tag = "type", rename_all = "kebab-case"))]
pub enum Event {
    /// The broker opened the session; `credits`: the visitor's spendable credits at this site.
    Open { session: String, mode: WorkMode, credits: Work },
    /// The kind of work changed: `pool` (real mining), `gate` (unlock work only, e.g. while the
    /// broker's pools are down) or `paused` (no work until a pool is back).
    Mode { mode: WorkMode },
    /// Credited work toward the content item, with the measured hash rate (hashes/s) and an
    /// estimate of the whole seconds left at that rate (`null` until a rate is measured).
    Progress { content: String, done: Work, required: Work, hashrate: u64, eta_s: Option<u64> },
    /// A share was verified and durably credited; `credits`: the visitor's balance after it.
    Share { work: Work, credits: Work },
    /// A share was refused (a stale job after a retarget is normal; others are worth logging).
    Rejected { code: ErrorCode },
    /// The content's quota is met: the token for the publisher's server, and for sealed content the
    /// keys that open it (the loader decrypts; they are not passed on to the page's listeners).
    Unlock { content: String, token: String, keys: Vec<ContentKey> },
    /// The broker issued this visitor an anonymous identity: the loader keeps it (the secret is
    /// shown nowhere else and the broker keeps no copy).
    Identity { user: String, secret: String },
    /// An error from the broker (or an unreadable frame).
    Error { code: String, message: String, fatal: bool },
}

impl Event {
    /// The event as the page receives it: a JSON object tagged by `type`.
    pub fn to_json(&self) -> String {
        let object = match self {
            Event::Open { session, mode, credits } => {
                let mut o = Object::tagged("open");
                o.str("session", session).str("mode", mode.as_str()).decimal_str("credits", credits.0);
                o
            }
            Event::Mode { mode } => {
                let mut o = Object::tagged("mode");
                o.str("mode", mode.as_str());
                o
            }
            Event::Progress { content, done, required, hashrate, eta_s } => {
                let mut o = Object::tagged("progress");
                o.str("content", content)
                    .decimal_str("done", done.0)
                    .decimal_str("required", required.0)
                    .uint("hashrate", *hashrate);
                match eta_s {
                    Some(eta) => o.uint("eta_s", *eta),
                    None => o.null("eta_s"),
                };
                o
            }
            Event::Share { work, credits } => {
                let mut o = Object::tagged("share");
                o.decimal_str("work", work.0).decimal_str("credits", credits.0);
                o
            }
            Event::Rejected { code } => {
                let mut o = Object::tagged("rejected");
                o.str("code", code.as_str());
                o
            }
            Event::Unlock { content, token, keys } => {
                let mut o = Object::tagged("unlock");
                o.str("content", content)
                    .str("token", token)
                    .objects("keys", keys.iter().map(ContentKey::json));
                o
            }
            Event::Identity { user, secret } => {
                let mut o = Object::tagged("identity");
                o.str("user", user).str("secret", secret);
                o
            }
            Event::Error { code, message, fatal } => {
                let mut o = Object::tagged("error");
                o.str("code", code).str("message", message).bool("fatal", *fatal);
                o
            }
        };
        object.finish()
    }
}

/// Who mines, for which site and content, under which consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub site: String,
    /// `None`: a new anonymous visitor (the broker issues the id in `welcome`).
    pub user: Option<String>,
    /// The publisher's proof for a vouched `user`.
    pub user_proof: Option<String>,
    /// The secret of an anonymous `user`.
    pub user_secret: Option<String>,
    pub content: Option<String>,
    pub consent: Consent,
    pub threads: u32,
    pub simd: bool,
    /// Proof of work only (`hello.gate_only`): no coin mined on this device (app hosts).
    pub gate_only: bool,
    /// The device class (`hello.client.engine`, `.cores`).
    pub engine: Option<String>,
    pub cores: Option<u32>,
}

/// The protocol state of one visitor across connections.
#[derive(Debug)]
pub struct Controller {
    identity: Identity,
    /// From the last `welcome`: sent as `hello.resume` after a reconnect.
    resume: Option<String>,
    /// The current and the previous job ids (the broker accepts shares of both).
    jobs: [Option<String>; 2],
    /// Latest credited work toward the content item: (done, required).
    progress: Option<(u128, u128)>,
    hashrate: HashRate,
    /// Every hash the workers reported.
    hashes: u64,
    open: bool,
    /// The kind of work of the newest job (or `paused` after `wait`).
    mode: Option<WorkMode>,
}

impl Controller {
    pub fn new(identity: Identity) -> Controller {
        Controller {
            identity,
            resume: None,
            jobs: [None, None],
            progress: None,
            hashrate: HashRate::default(),
            hashes: 0,
            open: false,
            mode: None,
        }
    }

    /// The socket opened: say hello (with the resume token of an earlier connection, if any).
    pub fn on_connected(&mut self) -> Vec<Command> {
        let id = &self.identity;
        let hashrate = self.hashrate.per_second().round() as u64;
        let hello = ClientMessage::Hello(Hello {
            v: PROTOCOL_VERSION,
            site: id.site.clone(),
            user: id.user.clone(),
            user_proof: id.user_proof.clone(),
            user_secret: id.user_secret.clone(),
            consent: id.consent.clone(),
            content: id.content.clone(),
            client: ClientInfo {
                threads: id.threads,
                simd: id.simd,
                hashrate: (hashrate > 0).then_some(hashrate),
                engine: id.engine.clone(),
                cores: id.cores,
            },
            resume: self.resume.clone(),
            gate_only: id.gate_only,
        });
        vec![Command::Send(hello)]
    }

    /// The socket closed: shares of the old connection's jobs can no longer be submitted.
    pub fn on_disconnected(&mut self) {
        self.open = false;
        self.jobs = [None, None];
    }

    /// Whether a session is open (after `welcome`, until the socket closes).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// A message from the broker.
    pub fn on_message(&mut self, message: ServerMessage) -> Vec<Command> {
        match message {
            ServerMessage::Welcome(welcome) => {
                self.open = true;
                self.resume = Some(welcome.resume);
                self.mode = Some(welcome.mode);
                let mut commands = Vec::new();
                if let Some(secret) = welcome.user_secret {
                    // Later hellos (a reconnect) prove the identity the broker just issued.
                    self.identity.user = Some(welcome.user.clone());
                    self.identity.user_secret = Some(secret.clone());
                    commands.push(Command::Emit(Event::Identity { user: welcome.user, secret }));
                }
                commands.push(Command::Emit(Event::Open {
                    session: welcome.session,
                    mode: welcome.mode,
                    credits: welcome.credits,
                }));
                if let Some(mine) = welcome.progress.iter().find(|p| Some(&p.content) == self.content()) {
                    commands.push(self.progress_event(mine.done.0, mine.required.0));
                }
                commands
            }
            ServerMessage::Job(job) => {
                self.jobs = [Some(job.id.clone()), self.jobs[0].take()];
                let mut commands = self.mode_changed(job.mode);
                commands.push(Command::Mine(job));
                commands
            }
            ServerMessage::Wait { .. } => {
                self.jobs = [None, None];
                let mut commands = vec![Command::Wait];
                commands.extend(self.mode_changed(WorkMode::Paused));
                commands
            }
            ServerMessage::Accepted { work, credits, .. } => {
                vec![Command::Emit(Event::Share { work, credits })]
            }
            ServerMessage::Rejected { code, .. } => vec![Command::Emit(Event::Rejected { code })],
            ServerMessage::Progress(progress) if Some(&progress.content) == self.content() => {
                vec![self.progress_event(progress.done.0, progress.required.0)]
            }
            ServerMessage::Progress(_) | ServerMessage::Pong { .. } => Vec::new(),
            ServerMessage::Unlock { content, token, keys } => {
                vec![Command::Emit(Event::Unlock { content, token, keys })]
            }
            ServerMessage::Error { code, message, fatal } => {
                let mut commands =
                    vec![Command::Emit(Event::Error { code: code.as_str().to_owned(), message, fatal })];
                if fatal {
                    commands.push(Command::Shutdown);
                }
                commands
            }
        }
    }

    /// A worker found `nonce` on `job`: submit it while the broker still accepts that job.
    pub fn on_found(&mut self, job: &str, nonce: u32) -> Vec<Command> {
        if !self.open || !self.jobs.iter().flatten().any(|id| id == job) {
            return Vec::new();
        }
        let nonce = protocol::format_nonce(nonce);
        vec![Command::Send(ClientMessage::Submit(Submit { job: job.to_owned(), nonce }))]
    }

    /// Every worker searched its whole range of `job`: ask for a new one (only for the current job).
    pub fn on_exhausted(&mut self, job: &str) -> Vec<Command> {
        if !self.open || self.jobs[0].as_deref() != Some(job) {
            return Vec::new();
        }
        vec![Command::Send(ClientMessage::More { job: job.to_owned() })]
    }

    /// Worker `worker` did `hashes` over `elapsed_ms`.
    pub fn on_hashes(&mut self, worker: usize, hashes: u64, elapsed_ms: f64) {
        self.hashrate.add(worker, hashes, elapsed_ms);
        self.hashes = self.hashes.saturating_add(hashes);
    }

    /// The client now runs `count` workers: the rate is the sum over those, each measured afresh.
    pub fn on_worker_count(&mut self, count: usize) {
        self.hashrate.set_workers(count);
    }

    /// Every hash done since the client started.
    pub fn hashes(&self) -> u64 {
        self.hashes
    }

    /// The measured hash rate (hashes/s, smoothed over a few seconds).
    pub fn hashrate(&self) -> f64 {
        self.hashrate.per_second()
    }

    /// A fresh progress event at the current rate (the ETA changes as the rate is measured).
    pub fn progress(&self) -> Option<Event> {
        let (done, required) = self.progress?;
        let content = self.content()?.clone();
        let hashrate = self.hashrate();
        let left = required.saturating_sub(done);
        // Display only: whole seconds from integer work over the measured rate.
        let eta_s = (hashrate > 0.0).then(|| (left as f64 / hashrate).round() as u64);
        let hashrate = hashrate.round() as u64;
        Some(Event::Progress { content, done: Work(done), required: Work(required), hashrate, eta_s })
    }

    fn progress_event(&mut self, done: u128, required: u128) -> Command {
        self.progress = Some((done, required));
        Command::Emit(self.progress().expect("progress and content are set"))
    }

    /// A `mode` event when the kind of work differs from the last one the page was told of.
    fn mode_changed(&mut self, mode: WorkMode) -> Vec<Command> {
        if self.mode.replace(mode) == Some(mode) {
            return Vec::new();
        }
        vec![Command::Emit(Event::Mode { mode })]
    }

    fn content(&self) -> Option<&String> {
        self.identity.content.as_ref()
    }
}

/// The client's hash rate: the sum over its workers of each worker's rate, smoothed with an
/// exponential moving average over about `TAU_MS`. Each worker reports its own hashes over its own
/// interval; taking one report as the whole client's rate would divide the rate (and multiply the
/// ETA) by the number of workers.
///
/// Workers share the device's cores, so a change in their number changes every worker's rate, not
/// only the added or removed one's: on a phone capped at half a core, a second worker halves the
/// first's rate. Smoothed rates from before a change would count the old share on top of the new
/// worker's (the ETA shown 40% short at 10 s), so a change starts every worker over, and until each
/// running worker has reported since, the last complete sum stands.
#[derive(Debug, Default)]
struct HashRate {
    /// Per running worker: its smoothed rate since the last change of count, `None` until it reports.
    workers: Vec<Option<f64>>,
    /// The sum when every worker had last reported: the figure while a change is being measured.
    settled: Option<f64>,
}

const TAU_MS: f64 = 5000.0;

impl HashRate {
    fn add(&mut self, worker: usize, hashes: u64, elapsed_ms: f64) {
        if elapsed_ms <= 0.0 {
            return;
        }
        if self.workers.len() <= worker {
            self.workers.resize(worker + 1, None);
        }
        let rate = hashes as f64 * 1000.0 / elapsed_ms;
        let slot = &mut self.workers[worker];
        *slot = Some(match *slot {
            None => rate,
            Some(smoothed) => smoothed + (1.0 - (-elapsed_ms / TAU_MS).exp()) * (rate - smoothed),
        });
        if let Some(sum) = self.workers.iter().copied().sum::<Option<f64>>() {
            self.settled = Some(sum);
        }
    }

    /// The client runs `count` workers now: each is measured afresh.
    fn set_workers(&mut self, count: usize) {
        if count != self.workers.len() {
            self.workers = vec![None; count];
        }
    }

    fn per_second(&self) -> f64 {
        self.settled.unwrap_or_else(|| self.workers.iter().flatten().sum())
    }
}

/// Splits the 2^32 nonce positions of a job among `workers`: `(start, end)` with `end` exclusive
/// (up to 2^32, hence u64). The parts are disjoint and cover every position.
pub fn nonce_ranges(workers: u32) -> Vec<(u32, u64)> {
    let workers = u64::from(workers.max(1));
    let space = 1u64 << 32;
    (0..workers).map(|i| ((i * space / workers) as u32, (i + 1) * space / workers)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Progress;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn controller(content: Option<&str>) -> Controller {
        Controller::new(Identity {
            site: "site_1".into(),
            user: Some("reader".into()),
            user_proof: Some("1.proof".into()),
            user_secret: None,
            content: content.map(str::to_owned),
            consent: Consent { id: "c1".into(), given_at: 1, expires_at: 2 },
            threads: 3,
            simd: true,
            gate_only: false,
            engine: Some("webkit".into()),
            cores: Some(4),
        })
    }

    fn welcome(resume: &str, done: u128) -> ServerMessage {
        ServerMessage::Welcome(protocol::Welcome {
            v: 1,
            session: "s1".into(),
            resume: resume.into(),
            mode: WorkMode::Gate,
            share_interval_ms: 4000,
            progress: vec![
                Progress { content: "other".into(), done: Work(5), required: Work(9) },
                Progress { content: "article".into(), done: Work(done), required: Work(1000) },
            ],
            credits: Work(42),
            user: "reader".into(),
            user_secret: None,
        })
    }

    fn job(id: &str) -> protocol::Job {
        protocol::Job {
            id: id.into(),
            header: "00".repeat(80),
            target: "ff".repeat(32),
            work: Work(1),
            mode: WorkMode::Gate,
        }
    }

    #[test]
    fn wait_stops_the_workers_and_mode_changes_are_told_once() {
        let mut c = controller(None);
        c.on_connected();
        c.on_message(welcome("t", 0));
        // Same mode as the welcome: no event, just work.
        assert_eq!(c.on_message(ServerMessage::Job(job("g1"))), vec![Command::Mine(job("g1"))]);
        let pool = protocol::Job { mode: WorkMode::Pool, ..job("p1") };
        assert_eq!(
            c.on_message(ServerMessage::Job(pool.clone())),
            vec![Command::Emit(Event::Mode { mode: WorkMode::Pool }), Command::Mine(pool)]
        );
        let waiting = c.on_message(ServerMessage::Wait { reason: "upstream_unavailable".into() });
        assert_eq!(waiting, vec![Command::Wait, Command::Emit(Event::Mode { mode: WorkMode::Paused })]);
        assert!(c.on_found("p1", 7).is_empty(), "jobs before a wait take no more shares");
        assert!(c.on_exhausted("p1").is_empty());
        let back = protocol::Job { mode: WorkMode::Pool, ..job("p2") };
        assert_eq!(
            c.on_message(ServerMessage::Job(back.clone()))[0],
            Command::Emit(Event::Mode { mode: WorkMode::Pool })
        );
    }

    /// The messages sent, as the JSON the broker receives.
    fn sent(commands: &[Command]) -> Vec<serde_json::Value> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Send(message) => Some(serde_json::to_value(message).unwrap()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_visitor_says_hello_without_an_id_and_proves_the_issued_one_after_a_reconnect() {
        let mut c = Controller::new(Identity { user: None, user_proof: None, ..controller(None).identity });
        let hello = &sent(&c.on_connected())[0];
        assert!(hello.get("user").is_none() && hello.get("user_proof").is_none(), "{hello}");
        let ServerMessage::Welcome(mut issued) = welcome("t", 0) else { unreachable!() };
        issued.user = "anon_00".into();
        issued.user_secret = Some("usec_1".into());
        let commands = c.on_message(ServerMessage::Welcome(issued));
        assert_eq!(
            commands[0],
            Command::Emit(Event::Identity { user: "anon_00".into(), secret: "usec_1".into() })
        );
        c.on_disconnected();
        let again = &sent(&c.on_connected())[0];
        assert_eq!(
            (again["user"].as_str(), again["user_secret"].as_str()),
            (Some("anon_00"), Some("usec_1"))
        );
        // A welcome without a secret (an identity already held) issues nothing to keep.
        assert!(
            !c.on_message(welcome("t", 0)).iter().any(|c| matches!(c, Command::Emit(Event::Identity { .. })))
        );
    }

    #[test]
    fn hello_carries_identity_consent_and_after_a_reconnect_the_resume_token() {
        let mut c = controller(Some("article"));
        let hello = &sent(&c.on_connected())[0];
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["v"], 1);
        assert_eq!((hello["site"].as_str(), hello["user"].as_str()), (Some("site_1"), Some("reader")));
        assert_eq!(hello["content"], "article");
        assert_eq!(hello["consent"]["id"], "c1");
        assert_eq!(hello["client"]["threads"], 3);
        assert!(hello.get("resume").is_none() && hello["client"].get("hashrate").is_none());
        // The broker's own parser accepts it.
        assert!(protocol::classify_client_frame(&serde_json::to_string(hello).unwrap()).is_ok());

        c.on_message(welcome("tok.1", 0));
        c.on_hashes(0, 2_000_000, 1000.0);
        c.on_disconnected();
        let again = &sent(&c.on_connected())[0];
        assert_eq!(again["resume"], "tok.1");
        assert_eq!(again["client"]["hashrate"], 2_000_000, "the next first share is sized to the device");
    }

    #[test]
    fn welcome_reports_this_contents_progress_and_jobs_go_to_the_workers() {
        let mut c = controller(Some("article"));
        c.on_connected();
        let commands = c.on_message(welcome("t", 250));
        assert_eq!(
            commands[0],
            Command::Emit(Event::Open { session: "s1".into(), mode: WorkMode::Gate, credits: Work(42) })
        );
        assert!(matches!(
            &commands[1],
            Command::Emit(Event::Progress { content, done: Work(250), required: Work(1000), eta_s: None, .. })
                if content == "article"
        ));
        assert!(c.is_open());
        assert_eq!(c.on_message(ServerMessage::Job(job("j1"))), vec![Command::Mine(job("j1"))]);
        // Progress of another item is not this gate's business.
        let other =
            ServerMessage::Progress(Progress { content: "other".into(), done: Work(1), required: Work(2) });
        assert!(c.on_message(other).is_empty());
    }

    #[test]
    fn found_nonces_are_submitted_for_the_current_and_previous_job_only() {
        let mut c = controller(None);
        assert!(c.on_found("j1", 7).is_empty(), "nothing is sent before the session is open");
        c.on_message(welcome("t", 0));
        c.on_message(ServerMessage::Job(job("j1")));
        c.on_message(ServerMessage::Job(job("j2")));
        assert_eq!(sent(&c.on_found("j2", 0x1d_ac_2b_7c))[0]["nonce"], "1dac2b7c");
        assert_eq!(sent(&c.on_found("j1", 1))[0]["job"], "j1", "the previous job still counts");
        c.on_message(ServerMessage::Job(job("j3")));
        assert!(c.on_found("j1", 1).is_empty(), "two jobs back is stale: not sent");
        c.on_disconnected();
        assert!(c.on_found("j3", 1).is_empty(), "a closed session submits nothing");
    }

    #[test]
    fn an_exhausted_current_job_asks_for_more() {
        let mut c = controller(None);
        c.on_message(welcome("t", 0));
        c.on_message(ServerMessage::Job(job("j1")));
        c.on_message(ServerMessage::Job(job("j2")));
        assert!(c.on_exhausted("j1").is_empty(), "an old job: the new one is already here");
        let more = &sent(&c.on_exhausted("j2"))[0];
        assert_eq!((more["type"].as_str(), more["job"].as_str()), (Some("more"), Some("j2")));
    }

    #[test]
    fn shares_unlocks_and_errors_become_events_and_a_fatal_error_shuts_down() {
        let mut c = controller(Some("article"));
        c.on_message(welcome("t", 0));
        let accepted = ServerMessage::Accepted {
            job: "j".into(),
            nonce: "00000001".into(),
            work: Work(64),
            credits: Work(106),
        };
        assert_eq!(
            c.on_message(accepted),
            vec![Command::Emit(Event::Share { work: Work(64), credits: Work(106) })]
        );
        let keys = vec![ContentKey { version: 1, key: "k".into() }];
        let unlock =
            ServerMessage::Unlock { content: "article".into(), token: "jwt".into(), keys: keys.clone() };
        assert_eq!(
            c.on_message(unlock),
            vec![Command::Emit(Event::Unlock { content: "article".into(), token: "jwt".into(), keys })]
        );
        let rate_limited =
            ServerMessage::Error { code: ErrorCode::RateLimited, message: "slow".into(), fatal: false };
        assert_eq!(c.on_message(rate_limited).len(), 1);
        let disabled =
            ServerMessage::Error { code: ErrorCode::SiteDisabled, message: "off".into(), fatal: true };
        let commands = c.on_message(disabled);
        assert!(
            matches!(&commands[0], Command::Emit(Event::Error { code, fatal: true, .. }) if code == "site_disabled")
        );
        assert_eq!(commands[1], Command::Shutdown);
    }

    #[test]
    fn the_eta_follows_the_measured_hash_rate() {
        let mut c = controller(Some("article"));
        c.on_message(welcome("t", 0));
        let progress = ServerMessage::Progress(Progress {
            content: "article".into(),
            done: Work(400),
            required: Work(1000),
        });
        c.on_message(progress);
        c.on_hashes(0, 100, 1000.0);
        assert_eq!(c.hashes(), 100);
        let Some(Event::Progress { eta_s: Some(eta), hashrate, .. }) = c.progress() else { panic!() };
        assert_eq!((hashrate, eta), (100, 6));
        // A faster device converges toward its rate and the ETA shrinks.
        for _ in 0..30 {
            c.on_hashes(0, 600, 1000.0);
        }
        let Some(Event::Progress { eta_s: Some(eta), .. }) = c.progress() else { panic!() };
        assert_eq!(eta, 1, "600 hashes left at about 600/s");
    }

    #[test]
    fn the_rate_is_the_sum_over_workers_each_reporting_on_its_own() {
        let mut c = controller(Some("article"));
        c.on_message(welcome("t", 0));
        c.on_message(ServerMessage::Progress(Progress {
            content: "article".into(),
            done: Work(0),
            required: Work(7000),
        }));
        // Seven workers of 100 hashes/s, each reporting every 250 ms, interleaved: 700 hashes/s.
        for _ in 0..40 {
            for worker in 0..7 {
                c.on_hashes(worker, 25, 250.0);
            }
        }
        assert!((c.hashrate() - 700.0).abs() < 1e-6, "{}", c.hashrate());
        let Some(Event::Progress { eta_s: Some(eta), .. }) = c.progress() else { panic!() };
        assert_eq!(eta, 10, "7000 hashes at 700/s");
        // The scaling probe took workers back: the rate counts only those still running.
        c.on_worker_count(2);
        c.on_hashes(0, 25, 250.0);
        c.on_hashes(1, 25, 250.0);
        assert!((c.hashrate() - 200.0).abs() < 1e-6, "{}", c.hashrate());
    }

    #[test]
    fn a_worker_added_on_a_shared_core_does_not_count_the_old_share_twice() {
        let mut c = controller(Some("article"));
        c.on_message(welcome("t", 0));
        c.on_worker_count(1);
        // Half a core: one worker does 100 hashes/s for ten seconds.
        for _ in 0..40 {
            c.on_hashes(0, 25, 250.0);
        }
        assert!((c.hashrate() - 100.0).abs() < 1e-6, "{}", c.hashrate());
        // The probe adds a second worker; the two now share the same half core at 50 hashes/s each.
        c.on_worker_count(2);
        c.on_hashes(0, 12, 250.0);
        assert!((c.hashrate() - 100.0).abs() < 1e-6, "until both report, the last sum: {}", c.hashrate());
        for _ in 0..8 {
            c.on_hashes(1, 12, 250.0);
            c.on_hashes(0, 13, 250.0);
        }
        let rate = c.hashrate();
        assert!((95.0..=105.0).contains(&rate), "the device's rate, not 100 + 50: {rate}");
        // The probe takes the second worker back: the first has the half core again.
        c.on_worker_count(1);
        c.on_hashes(0, 25, 250.0);
        assert!((c.hashrate() - 100.0).abs() < 1e-6, "{}", c.hashrate());
    }

    #[test]
    fn events_written_by_hand_are_what_serde_writes() {
        let events = [
            Event::Open { session: "s".into(), mode: WorkMode::Pool, credits: Work(u128::MAX) },
            Event::Mode { mode: WorkMode::Paused },
            Event::Progress {
                content: "a".into(),
                done: Work(1),
                required: Work(2),
                hashrate: 3,
                eta_s: Some(4),
            },
            Event::Progress {
                content: "a".into(),
                done: Work(0),
                required: Work(2),
                hashrate: 0,
                eta_s: None,
            },
            Event::Share { work: Work(5), credits: Work(6) },
            Event::Rejected { code: ErrorCode::StaleJob },
            Event::Unlock {
                content: "a".into(),
                token: "t.o.k".into(),
                keys: vec![ContentKey { version: 2, key: "k".into() }],
            },
            Event::Unlock { content: "a".into(), token: "t".into(), keys: Vec::new() },
            Event::Identity { user: "anon_1".into(), secret: "usec_1".into() },
            Event::Error { code: "bad_broker_message".into(), message: "\"why\"".into(), fatal: true },
        ];
        for event in events {
            let text = event.to_json();
            let ours: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(ours, serde_json::to_value(&event).unwrap(), "{text}");
        }
    }

    #[test]
    fn nonce_ranges_are_disjoint_and_cover_the_space() {
        for workers in [1, 2, 3, 7, 16] {
            let ranges = nonce_ranges(workers);
            assert_eq!(ranges.len(), workers as usize);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, 1 << 32);
            for pair in ranges.windows(2) {
                assert_eq!(u64::from(pair[1].0), pair[0].1, "adjacent, no gap, no overlap");
            }
        }
    }
}
