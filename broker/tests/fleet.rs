//! A fleet: several broker processes (the built binary) on one PostgreSQL ledger (a throwaway
//! cluster), sharing the operator's key; behind a real HAProxy where the test is about the balancer.
//! Each test is a fleet semantic the ledger, not a broker's memory, has to guarantee.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pool::Pool;
use common::postgres::Cluster;
use common::*;
use minepass::protocol::{self, ServerMessage, Welcome};
use minepass_broker::books::Source;
use minepass_broker::store::rewards::OfferKind;
use minepass_broker::store::{Ledger, Location, NewSite};
use minepass_broker::vault::KeySource;
use serde_json::{Value, json};

/// Every broker's token issuer: the fleet's public URL, the same behind any broker.
const PUBLIC_URL: &str = "http://fleet.test";
/// Work of the test content item: four shares of 4096 hashes.
const ARTICLE_WORK: u128 = 4 * 4096;

struct Fleet {
    url: String,
    key: String,
    brokers: Vec<BrokerProcess>,
    /// The test's own handle on the shared ledger (same key as the brokers).
    ledger: Ledger,
    site: NewSite,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// `n` brokers started at the same moment on a new ledger, with `extra` flags (per broker:
    /// `extra(i)`); then a site with one small content item.
    async fn start(n: usize, extra: impl Fn(usize) -> Vec<String>) -> Fleet {
        let url = Cluster::shared().create_database();
        let key = hex::encode(rand::random::<[u8; 32]>());
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let brokers = std::thread::scope(|scope| {
            let starts: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(i, dir)| {
                    let (url, key, mut flags) = (&url, &key, extra(i));
                    flags.extend([
                        "--database".into(),
                        url.clone(),
                        "--public-url".into(),
                        PUBLIC_URL.into(),
                    ]);
                    // The test miners submit as fast as they are answered.
                    flags.extend(["--messages-per-second".into(), "1000".into()]);
                    // The balancer's X-Forwarded-For names the visitor for per-address limits.
                    flags.extend(["--trusted-proxy".into(), "127.0.0.1".into()]);
                    scope.spawn(move || {
                        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                        start_process_with(dir.path(), &flags, &[("MINEPASS_KEY", key)])
                    })
                })
                .collect();
            starts.into_iter().map(|start| start.join().unwrap()).collect::<Vec<_>>()
        });
        let (ledger, _) =
            Ledger::open_with_key(Location::Postgres(url.clone()), &KeySource::Hex(key.clone()))
                .await
                .unwrap();
        let site = ledger.add_site("Fleet site").await.unwrap();
        ledger.put_content(&site.key, "article", "Article", ARTICLE_WORK).await.unwrap();
        Fleet { url, key, brokers, ledger, site, _dirs: dirs }
    }

    fn address(&self, i: usize) -> SocketAddr {
        self.brokers[i].address
    }

    /// A CLI command against the fleet's ledger, on a blocking thread.
    fn cli(&self, args: &[&str]) -> tokio::task::JoinHandle<std::process::Output> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_minepass-broker"));
        // The ledger options belong to the command, before any subcommand (`keys … rotate`).
        command
            .arg(args[0])
            .args(["--database", &self.url])
            .args(&args[1..])
            .env("MINEPASS_KEY", &self.key)
            .env("RUST_LOG", "warn");
        tokio::task::spawn_blocking(move || command.output().unwrap())
    }

    async fn site_id(&self) -> i64 {
        self.ledger.site_by_key(&self.site.key).await.unwrap().unwrap().id
    }
}

async fn connect(address: SocketAddr) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await.unwrap();
    socket
}

/// Opens a session for `user` (resuming `resume` if given): its welcome and first job.
async fn open(
    address: SocketAddr,
    fleet: &Fleet,
    user: &str,
    content: Option<&str>,
    resume: Option<&str>,
) -> (Socket, Welcome, protocol::Job) {
    let mut socket = connect(address).await;
    let mut frame = hello(&fleet.site.key, &fleet.site.secret, user, content);
    if let Some(resume) = resume {
        frame["resume"] = json!(resume);
    }
    send(&mut socket, &frame).await;
    let ServerMessage::Welcome(welcome) = recv(&mut socket).await else { panic!("expected a welcome") };
    let job = loop {
        if let ServerMessage::Job(job) = recv(&mut socket).await {
            break job;
        }
    };
    (socket, welcome, job)
}

/// Mines and submits `count` shares; returns the unlock token if one came.
async fn mine(socket: &mut Socket, job: &protocol::Job, count: usize) -> Option<String> {
    let (mut position, mut token) = (0, None);
    for _ in 0..count {
        let (nonce, next) = mine_from(job, position);
        position = next;
        send(socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)})).await;
        loop {
            match recv(socket).await {
                ServerMessage::Accepted { .. } => break,
                rejected @ ServerMessage::Rejected { .. } => panic!("share rejected: {rejected:?}"),
                _ => {}
            }
        }
    }
    // The unlock follows the accepted share that met the quota (after its progress).
    while let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), futures_util::StreamExt::next(socket)).await
    {
        if let Ok(ServerMessage::Unlock { token: unlocked, .. }) = serde_json::from_str(&text) {
            token = Some(unlocked);
        }
    }
    token
}

async fn jwks(address: SocketAddr) -> Value {
    reqwest::get(format!("http://{address}/.well-known/jwks.json")).await.unwrap().json().await.unwrap()
}

async fn post(address: SocketAddr, path: &str, bearer: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{address}{path}"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_starting_together_make_one_signing_key_and_one_demo_site() {
    let fleet = Fleet::start(3, |_| Vec::new()).await;
    let keys = fleet.ledger.signing_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.3.is_none()).count(), 1, "one active key: {keys:?}");
    let demo: Vec<_> =
        fleet.ledger.sites().await.unwrap().into_iter().filter(|s| s.key == "site_demo").collect();
    assert_eq!(demo.len(), 1);
    assert_eq!(fleet.brokers.iter().filter(|b| !b.demo_secret.is_empty()).count(), 1, "one made it");
    let published = jwks(fleet.address(0)).await;
    for i in 1..3 {
        assert_eq!(jwks(fleet.address(i)).await, published);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_on_another_broker_and_its_token_is_redeemed_once_across_the_fleet() {
    let fleet = Fleet::start(3, |_| Vec::new()).await;
    let (mut first, welcome, job) = open(fleet.address(0), &fleet, "reader-1", Some("article"), None).await;
    assert!(mine(&mut first, &job, 2).await.is_none());
    drop(first);

    // The same visitor comes back through another broker: same session, its work kept.
    let (mut again, resumed, job) =
        open(fleet.address(1), &fleet, "reader-1", Some("article"), Some(&welcome.resume)).await;
    assert_eq!(resumed.session, welcome.session, "resumed across brokers");
    assert_eq!(resumed.progress[0].done.0, 2 * 4096);
    let token = mine(&mut again, &job, 2).await.expect("the quota is met: an unlock token");

    // Any broker verifies it; redeemed at all three at once, exactly one answer is ok.
    let verifies = (0..12).map(|i| {
        post(fleet.address(i % 3), "/api/v1/tokens/verify", &fleet.site.secret, json!({ "token": token }))
    });
    let answers = futures_util::future::join_all(verifies).await;
    assert_eq!(answers.iter().filter(|(_, body)| body["ok"] == true).count(), 1, "{answers:?}");
    assert!(answers.iter().filter(|(_, b)| b["ok"] != true).all(|(_, b)| b["error"] == "already_used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spends_through_different_brokers_never_overspend() {
    let fleet = Fleet::start(3, |_| Vec::new()).await;
    let (mut socket, _, job) = open(fleet.address(0), &fleet, "spender", None, None).await;
    mine(&mut socket, &job, 8).await;
    let site_id = fleet.site_id().await;
    assert_eq!(fleet.ledger.credits(site_id, "spender").await.unwrap(), 8 * 4096);
    // Room for two spends of 3 shares' worth, not three.
    let offer = OfferKind::Tokens { tokens: 5 };
    fleet.ledger.put_offer(site_id, "pack", "Pack", 3 * 4096, &offer).await.unwrap();
    let spends = (0..12).map(|i| {
        post(
            fleet.address(i % 3),
            "/api/v1/users/spender/spend",
            &fleet.site.secret,
            json!({"offer": "pack"}),
        )
    });
    let answers = futures_util::future::join_all(spends).await;
    assert_eq!(answers.iter().filter(|(_, body)| body["ok"] == true).count(), 2, "{answers:?}");
    assert!(
        answers.iter().filter(|(_, b)| b["ok"] != true).all(|(_, b)| b["error"] == "insufficient_credits")
    );
    assert_eq!(fleet.ledger.credits(site_id, "spender").await.unwrap(), 2 * 4096);
    let report = fleet.ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_settles_once_whichever_brokers_and_clis_race() {
    let fleet = Fleet::start(3, |_| Vec::new()).await;
    let admin = fleet.ledger.add_admin_token("fleet test").await.unwrap();
    fleet.ledger.record_period("2026-12", 0, i64::MAX / 2, 50_000, Source::Recorded).await.unwrap();
    let path = "/api/v1/admin/periods/2026-12/settle";
    let clis: Vec<_> = (0..3).map(|_| fleet.cli(&["settle", "--period", "2026-12"])).collect();
    let brokers = (0..9).map(|i| post(fleet.address(i % 3), path, &admin, json!({"threshold_sats": 0})));
    let answers = futures_util::future::join_all(brokers).await;
    let runs: Vec<_> = futures_util::future::join_all(clis).await.into_iter().map(Result::unwrap).collect();
    let settled_by_api = answers.iter().filter(|(status, _)| *status == 200).count();
    let settled_by_cli = runs.iter().filter(|run| run.status.success()).count();
    assert_eq!(settled_by_api + settled_by_cli, 1, "{answers:?}");
    assert!(
        answers.iter().filter(|(s, _)| *s != 200).all(|(_, b)| b["error"] == "already_settled"),
        "{answers:?}"
    );
    for run in runs.iter().filter(|run| !run.status.success()) {
        let error = String::from_utf8_lossy(&run.stderr);
        assert!(error.contains("already settled"), "{error}");
    }
    let settlements = raw_strings(
        &Location::Postgres(fleet.url.clone()),
        "SELECT CAST(COUNT(*) AS TEXT) FROM entries WHERE kind = 'settlement'",
    )
    .await;
    assert_eq!(settlements, ["1"]);
    let report = fleet.ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_anywhere_is_published_by_every_broker_within_the_refresh_interval() {
    let fleet = Fleet::start(3, |_| Vec::new()).await;
    let before = jwks(fleet.address(0)).await;
    let rotated = fleet.cli(&["keys", "rotate"]).await.unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let kids = |set: &Value| -> Vec<String> {
        let mut kids: Vec<String> =
            set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        kids.sort();
        kids
    };
    let started = Instant::now();
    let bound = minepass_broker::tokens::KEY_REFRESH_INTERVAL + Duration::from_secs(5);
    loop {
        let sets = futures_util::future::join_all((0..3).map(|i| jwks(fleet.address(i)))).await;
        if sets.iter().all(|set| kids(set).len() == kids(&before).len() + 1 && kids(set) == kids(&sets[0])) {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "not every broker publishes the new key after {bound:?}: {sets:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Tokens signed with the new key verify at every broker.
    let (mut socket, _, job) = open(fleet.address(2), &fleet, "reader-7", Some("article"), None).await;
    let token = mine(&mut socket, &job, 4).await.expect("unlocked");
    let (_, answer) =
        post(fleet.address(0), "/api/v1/tokens/verify", &fleet.site.secret, json!({"token": token})).await;
    assert_eq!(answer["ok"], true, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broker_keeps_its_own_pool_connection_and_the_pool_accepts_every_share() {
    let mut pool = Pool::start_fresh(&[]);
    let port = pool.port;
    let fleet =
        Fleet::start(2, |i| vec!["--pool".into(), format!("stratum+tcp://broker-{i}:x@127.0.0.1:{port}")])
            .await;
    pool.wait_for(|e| e["event"] == "authorize" && e["worker"] == "broker-0", "broker 0's connection");
    pool.wait_for(|e| e["event"] == "authorize" && e["worker"] == "broker-1", "broker 1's connection");
    for i in 0..2 {
        let (mut socket, _, mut job) =
            open(fleet.address(i), &fleet, &format!("miner-{i}"), None, None).await;
        while job.mode != protocol::WorkMode::Pool {
            let ServerMessage::Job(next) = recv(&mut socket).await else { continue };
            job = next;
        }
        mine(&mut socket, &job, 4).await;
    }
    let shares = pool.shares(8);
    for worker in ["broker-0", "broker-1"] {
        let theirs: Vec<_> = shares.iter().filter(|s| s["worker"] == worker).collect();
        assert!(theirs.len() >= 4, "{worker}: {shares:?}");
        // Distinct extranonce space per connection: no share is a duplicate of another's.
        assert!(theirs.iter().all(|s| s["valid"] == true), "{worker}: {theirs:?}");
    }
    let subscriptions = pool.seen.iter().filter(|e| e["event"] == "authorize").count();
    assert_eq!(subscriptions, 2, "one upstream connection per broker");
}

/// HAProxy in front of the brokers: WebSockets in `mode http`, health checks on `/healthz`, a
/// connection to a dead broker redispatched to a live one.
struct Balancer {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(backends: &[SocketAddr]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = common::pool::free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("    server broker{i} {b} check inter 200ms fall 2 rise 2\n"))
            .collect();
        let config = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
             \x20   timeout tunnel 1h\n    retries 3\n    option redispatch\n    option forwardfor\n\
             frontend fleet\n    bind 127.0.0.1:{port}\n    default_backend brokers\n\
             backend brokers\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let haproxy =
            ["/usr/sbin/haproxy", "haproxy"].into_iter().find(|p| Command::new(p).arg("-v").output().is_ok());
        let child = Command::new(haproxy.expect("haproxy is installed (cargo xtask test installs it)"))
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Balancer { child, address, _dir: dir }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one miner behind the balancer did: every acknowledged (job, nonce), its session ids, and
/// how many times it reconnected.
#[derive(Debug, Default)]
struct MinerRun {
    acked: Vec<(String, u32)>,
    sessions: Vec<String>,
    reconnects: u32,
}

/// Mines through `address` as `user` until `stop`, reconnecting (and resuming) whenever the
/// connection breaks, as the SDK does.
async fn mine_through(
    address: SocketAddr,
    site: NewSite,
    user: String,
    stop: tokio_util::sync::CancellationToken,
) -> MinerRun {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut run = MinerRun::default();
    let mut resume: Option<String> = None;
    while !stop.is_cancelled() {
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut frame = hello(&site.key, &site.secret, &user, None);
        if let Some(resume) = &resume {
            frame["resume"] = json!(resume);
        }
        if futures_util::SinkExt::send(&mut socket, Message::Text(frame.to_string().into())).await.is_err() {
            continue;
        }
        let (mut job, mut position): (Option<protocol::Job>, u32) = (None, 0);
        let mut awaiting = None;
        loop {
            if stop.is_cancelled() {
                return run;
            }
            if awaiting.is_none()
                && let Some(job) = &job
            {
                let (nonce, next) = mine_from(job, position);
                position = next;
                let submit = json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)});
                if futures_util::SinkExt::send(&mut socket, Message::Text(submit.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                awaiting = Some(());
            }
            let frame = match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
                Ok(Some(Ok(_))) => continue,
            };
            match serde_json::from_str(&frame).unwrap() {
                ServerMessage::Welcome(welcome) => {
                    run.sessions.push(welcome.session);
                    resume = Some(welcome.resume);
                }
                ServerMessage::Job(next) => {
                    job = Some(next);
                    position = 0;
                }
                ServerMessage::Accepted { job, nonce, .. } => {
                    run.acked.push((job, protocol::parse_nonce(&nonce).unwrap()));
                    awaiting = None;
                }
                ServerMessage::Rejected { .. } => awaiting = None,
                _ => {}
            }
        }
        run.reconnects += 1;
        tokio::time::sleep(Duration::from_millis(50 + rand::random::<u64>() % 200)).await;
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_broker_behind_haproxy_loses_no_acknowledged_credit_and_counts_none_twice() {
    let mut fleet = Fleet::start(3, |_| Vec::new()).await;
    let balancer = Balancer::start(&(0..3).map(|i| fleet.address(i)).collect::<Vec<_>>());
    let stop = tokio_util::sync::CancellationToken::new();
    let miners: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(mine_through(
                balancer.address,
                fleet.site.clone(),
                format!("miner-{i}"),
                stop.clone(),
            ))
        })
        .collect();
    let site_id = fleet.site_id().await;
    let ledger = fleet.ledger.clone();
    let committed = || {
        let ledger = ledger.clone();
        async move {
            let mut total = 0;
            for i in 0..6 {
                total += ledger.credits(site_id, &format!("miner-{i}")).await.unwrap();
            }
            total / 4096
        }
    };
    // Under load: the miners are being credited, then one broker dies mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed().await < 60 {
        assert!(Instant::now() < deadline, "the miners did not get going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = committed().await;
    fleet.brokers[0].child.kill().unwrap();
    fleet.brokers[0].child.wait().unwrap();
    // Its visitors come back through the balancer to the others and mine on.
    while committed().await < before + 120 {
        assert!(Instant::now() < deadline, "mining did not continue after the kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let mut runs = Vec::new();
    for miner in miners {
        runs.push(miner.await.unwrap());
    }
    assert!(runs.iter().any(|run| run.reconnects > 0), "someone was on the killed broker: {runs:?}");
    for (i, run) in runs.iter().enumerate() {
        // Every reconnect resumed the same session (the resume key is the fleet's).
        assert!(run.sessions.windows(2).all(|w| w[0] == w[1]), "miner {i}: {:?}", run.sessions);
        let (user, _, _) = fleet.ledger.user_credits(site_id, &format!("miner-{i}")).await.unwrap().unwrap();
        let logged: Vec<(String, u32)> = fleet
            .ledger
            .user_shares(user)
            .await
            .unwrap()
            .into_iter()
            .map(|(job, nonce, _)| (job, nonce))
            .collect();
        for share in &run.acked {
            assert!(logged.contains(share), "miner {i}: acknowledged share {share:?} lost");
        }
        // Nothing counted twice: credits are exactly the logged shares (each logged once).
        let mut unique = logged.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), logged.len(), "miner {i}: a share logged twice");
        assert_eq!(
            fleet.ledger.credits(site_id, &format!("miner-{i}")).await.unwrap(),
            4096 * logged.len() as u128
        );
    }
    let report = fleet.ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(balancer);
}
