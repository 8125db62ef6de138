//! The broker as a Stratum v1 proxy, against a real third-party pool server: the npm package
//! `stratum-pool-sha256`, run by `tests/pool/pool.cjs` on a loopback port with a stand-in for the
//! node RPC it needs (`cargo xtask test` installs it; `npm ci` does too). WebSocket clients mine
//! natively with the `minepass` kernel; the pool verifies every share it is sent on its own.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pool::*;
use common::*;
use minepass::protocol::{self, ErrorCode, ServerMessage, WorkMode};
use minepass_broker::store::PoolTotals;
use minepass_broker::work::upstream::{Fallback, PoolConfig, Upstream, UpstreamConfig};
use minepass_broker::work::{Jobs, Vardiff};
use serde_json::{Value, json};

/// Session shares of 2^13 hashes: every one also meets the pool's target, so every one is forwarded.
const SHARE_WORK: u128 = 1 << 13;

fn upstream_config(pools: Vec<PoolConfig>, fallback: Fallback) -> UpstreamConfig {
    let mut config = UpstreamConfig::new(pools);
    config.fallback = fallback;
    config.backoff_min = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    config.failback_interval = Duration::from_secs(1);
    config
}

async fn start_broker(config: UpstreamConfig) -> (TestBroker, Arc<Upstream>) {
    let upstream = Upstream::start(config);
    let vardiff = Vardiff { interval: Duration::from_secs(60), min_work: SHARE_WORK, max_work: SHARE_WORK };
    let broker = TestBroker::start_with_jobs(Jobs::pool(Arc::clone(&upstream)), vardiff, |_| {}).await;
    (broker, upstream)
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ledger's pool totals once `accepted` pool-accepted answers are recorded (up to 10 s).
async fn accepted_answers(ledger: &minepass_broker::store::Ledger, accepted: u64) -> PoolTotals {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let totals = ledger.pool_totals(None).await.unwrap();
        if totals.accepted == accepted {
            return totals;
        }
        assert!(Instant::now() < deadline, "pool answers not recorded: {totals:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mines one share of `job` from `position`, submits it and expects `accepted`; returns the next
/// position.
async fn submit_share(socket: &mut Socket, job: &protocol::Job, position: u32) -> u32 {
    let (nonce, next) = mine_from(job, position);
    let nonce = protocol::format_nonce(nonce);
    send(socket, &json!({"type": "submit", "job": job.id, "nonce": nonce})).await;
    loop {
        match recv(socket).await {
            ServerMessage::Accepted { nonce: echoed, .. } => {
                assert_eq!(echoed, nonce);
                return next;
            }
            ServerMessage::Progress(_) => {}
            other => panic!("expected accepted, got {other:?}"),
        }
    }
}

/// The next `job` the broker pushes, skipping progress and acknowledgements.
async fn next_job(socket: &mut Socket) -> protocol::Job {
    loop {
        match recv(socket).await {
            ServerMessage::Job(job) => return job,
            ServerMessage::Progress(_) | ServerMessage::Accepted { .. } => {}
            other => panic!("expected a job, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn browser_sessions_mine_distinct_headers_into_a_real_pool_that_accepts_every_share() {
    let mut pool = Pool::start_fresh(&[]);
    let (broker, upstream) =
        start_broker(upstream_config(vec![pool.url("payout.worker1")], Fallback::Gate)).await;
    wait_until("pool work", || upstream.has_work()).await;
    pool.wait_for(|e| e["event"] == "authorize" && e["authorized"] == true, "the broker's authorize");

    let (mut alice, alice_job) = open_session(&broker, "alice").await;
    let (mut bob, bob_job) = open_session(&broker, "bob").await;
    assert_eq!((alice_job.mode, bob_job.mode), (WorkMode::Pool, WorkMode::Pool));
    assert_ne!(alice_job.header, bob_job.header, "sessions never search the same header");
    // Same block template: only the merkle root (bytes 36..68, via extranonce2) differs.
    assert_eq!(alice_job.header[..72], bob_job.header[..72]);

    let (mut a, mut b) = (0, 0);
    for _ in 0..5 {
        a = submit_share(&mut alice, &alice_job, a).await;
        b = submit_share(&mut bob, &bob_job, b).await;
    }
    let shares = pool.shares(10);
    assert_eq!(shares.len(), 10, "{shares:?}");
    assert!(shares.iter().all(|s| s["valid"] == true && s["worker"] == "payout.worker1"), "{shares:?}");

    // Every answer is in the ledger, against its share (and so its session, user and site).
    let ledger = broker.ledger.clone();
    let totals = accepted_answers(&ledger, 10).await;
    assert_eq!(totals.submitted, 10);
    assert!(totals.accepted_work >= 10 * 4096, "pool work is counted at the pool's target");
    let site = ledger.site_by_key(&broker.site_key).await.unwrap().unwrap();
    assert_eq!(ledger.pool_totals(Some(site.id)).await.unwrap().accepted, 10);
    let status = upstream.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].sessions, 2);
    assert_eq!(status[0].capacity, 1 << 16, "4-byte extranonce2, 2 rolled per session: 65,536 sessions");
}

#[tokio::test]
async fn a_new_block_pushes_new_work_at_once_and_makes_old_shares_stale() {
    let mut pool = Pool::start_fresh(&[]);
    let (broker, upstream) = start_broker(upstream_config(vec![pool.url("w")], Fallback::Gate)).await;
    wait_until("pool work", || upstream.has_work()).await;
    let (mut socket, old_job) = open_session(&broker, "carol").await;
    let (old_share, _) = mine_from(&old_job, 0);

    pool.new_block();
    pool.wait_for(|e| e["event"] == "newblock", "the new block");
    // The broker pushes the new block's job without being asked.
    let new_job = next_job(&mut socket).await;
    assert_eq!(new_job.mode, WorkMode::Pool);
    assert_ne!(new_job.header[8..72], old_job.header[8..72], "a new previous block");

    let stale = json!({"type": "submit", "job": old_job.id, "nonce": protocol::format_nonce(old_share)});
    send(&mut socket, &stale).await;
    match recv(&mut socket).await {
        ServerMessage::Rejected { code: ErrorCode::StaleJob, .. } => {}
        other => panic!("expected stale_job, got {other:?}"),
    }
    submit_share(&mut socket, &new_job, 0).await;
    let shares = pool.shares(1);
    assert_eq!(shares.len(), 1, "the stale share never reached the pool: {shares:?}");
    assert_eq!(shares[0]["valid"], true);
}

#[tokio::test]
async fn a_proof_of_work_only_session_never_mines_for_the_pool() {
    let mut pool = Pool::start_fresh(&[]);
    let (broker, upstream) = start_broker(upstream_config(vec![pool.url("w")], Fallback::Gate)).await;
    wait_until("pool work", || upstream.has_work()).await;
    // An app host in a store (docs/HOST.md) asks for gate work only.
    let mut socket = broker.connect().await;
    let mut hello = hello(&broker.site_key, &broker.site_secret, "app-user", Some("article"));
    hello["gate_only"] = json!(true);
    send(&mut socket, &hello).await;
    let ServerMessage::Welcome(welcome) = recv(&mut socket).await else { panic!("expected welcome") };
    assert_eq!(welcome.mode, WorkMode::Gate, "the pool has work, but this session asked for none");
    let job = next_job(&mut socket).await;
    assert_eq!(job.mode, WorkMode::Gate);
    let next = submit_share(&mut socket, &job, 0).await;

    // A new block changes nothing for it: no pool job is pushed, its gate job stays current.
    pool.new_block();
    pool.wait_for(|e| e["event"] == "newblock", "the new block");
    let (mut other, other_job) = open_session(&broker, "pool-user").await;
    assert_eq!(other_job.mode, WorkMode::Pool, "other sessions still mine for the pool");
    submit_share(&mut other, &other_job, 0).await;
    // Were a pool job pushed to it, this would see that instead of its acknowledgement.
    submit_share(&mut socket, &job, next).await;
    assert_eq!(
        accepted_answers(&broker.ledger, 1).await.submitted,
        1,
        "only the pool session's share went upstream"
    );
    assert_eq!(pool.shares(1).len(), 1);
}

#[tokio::test]
async fn a_wrong_share_is_rejected_by_the_broker_before_it_reaches_the_pool() {
    let mut pool = Pool::start_fresh(&[]);
    let (broker, upstream) = start_broker(upstream_config(vec![pool.url("w")], Fallback::Gate)).await;
    wait_until("pool work", || upstream.has_work()).await;
    let (mut socket, job) = open_session(&broker, "dave").await;
    let (good, _) = mine_from(&job, 0);
    // A nonce just below the first share: it was searched and did not meet the target.
    let bad = if good > 0 { good - 1 } else { mine_from(&job, 1).0 + 1 };
    for (nonce, code) in [(bad, ErrorCode::AboveTarget), (good, ErrorCode::Duplicate)] {
        if code == ErrorCode::Duplicate {
            submit_share(&mut socket, &job, 0).await;
        }
        send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)}))
            .await;
        loop {
            match recv(&mut socket).await {
                ServerMessage::Rejected { code: got, .. } => break assert_eq!(got, code),
                ServerMessage::Progress(_) => {}
                other => panic!("expected {code}, got {other:?}"),
            }
        }
    }
    let shares = pool.shares(1);
    assert_eq!(shares.len(), 1, "only the good share was forwarded: {shares:?}");
    assert_eq!(shares[0]["valid"], true);
}

#[tokio::test]
async fn killing_the_pool_moves_sessions_to_gate_work_and_its_restart_brings_pool_work_back() {
    let port = free_port();
    let pool = Pool::start(port, &[]);
    let (broker, upstream) = start_broker(upstream_config(vec![pool.url("w")], Fallback::Gate)).await;
    wait_until("pool work", || upstream.has_work()).await;
    let (mut socket, job) = open_session(&broker, "erin").await;
    assert_eq!(job.mode, WorkMode::Pool);
    submit_share(&mut socket, &job, 0).await;
    let mut pool = pool;
    pool.shares(1);

    drop(pool);
    let gate = next_job(&mut socket).await;
    assert_eq!(gate.mode, WorkMode::Gate, "the session stays alive on gate work");
    submit_share(&mut socket, &gate, 0).await;

    let mut pool = Pool::start(port, &[]);
    let back = next_job(&mut socket).await;
    assert_eq!(back.mode, WorkMode::Pool, "pool work comes back without a reconnect");
    submit_share(&mut socket, &back, 0).await;
    let shares = pool.shares(1);
    assert_eq!(shares[0]["valid"], true);
    // Both pool-accepted shares, the one before the kill included, are in the ledger with their
    // answers; the gate share was not forwarded.
    assert_eq!(accepted_answers(&broker.ledger, 2).await.submitted, 2);
}

#[tokio::test]
async fn with_fallback_pause_sessions_wait_until_a_pool_has_work() {
    let port = free_port();
    let config = upstream_config(
        vec![PoolConfig::parse(&format!("stratum+tcp://w:x@127.0.0.1:{port}")).unwrap()],
        Fallback::Pause,
    );
    let (broker, upstream) = start_broker(config).await;
    let mut socket = broker.connect().await;
    send(&mut socket, &hello(&broker.site_key, &broker.site_secret, "frank", None)).await;
    let ServerMessage::Welcome(welcome) = recv(&mut socket).await else { panic!("expected welcome") };
    assert_eq!(welcome.mode, WorkMode::Paused);
    match recv(&mut socket).await {
        ServerMessage::Wait { reason } => assert_eq!(reason, "upstream_unavailable"),
        other => panic!("expected wait, got {other:?}"),
    }
    let _pool = Pool::start(port, &[]);
    let job = next_job(&mut socket).await;
    assert_eq!(job.mode, WorkMode::Pool);
    assert!(upstream.has_work());
    submit_share(&mut socket, &job, 0).await;
}

#[tokio::test]
async fn failover_to_the_next_pool_and_back_when_the_first_returns() {
    let (first_port, second_port) = (free_port(), free_port());
    let first = Pool::start(first_port, &[]);
    let mut second = Pool::start(second_port, &[]);
    let config = upstream_config(vec![first.url("w"), second.url("w")], Fallback::Gate);
    let (broker, upstream) = start_broker(config).await;
    wait_until("pool work", || upstream.has_work()).await;
    assert!(upstream.status()[0].pool.ends_with(&first_port.to_string()));
    let (mut socket, _) = open_session(&broker, "grace").await;

    drop(first);
    let job = loop {
        let job = next_job(&mut socket).await;
        if job.mode == WorkMode::Pool {
            break job;
        }
    };
    assert!(upstream.status()[0].pool.ends_with(&second_port.to_string()), "failed over");
    submit_share(&mut socket, &job, 0).await;
    second.wait_for(|e| e["event"] == "share" && e["valid"] == true, "a share at the second pool");

    let _first = Pool::start(first_port, &[]);
    wait_until("failback to the first pool", || {
        upstream.status().first().is_some_and(|c| c.pool.ends_with(&first_port.to_string()))
    })
    .await;
}

#[tokio::test]
async fn an_unauthorized_worker_is_not_used_and_the_next_pool_is() {
    let refusing = Pool::start_fresh(&["--reject-user", "w"]);
    let accepting = Pool::start_fresh(&[]);
    let config = upstream_config(vec![refusing.url("w"), accepting.url("w")], Fallback::Gate);
    let (_broker, upstream) = start_broker(config).await;
    wait_until("pool work", || upstream.has_work()).await;
    assert!(upstream.status()[0].pool.ends_with(&accepting.port.to_string()));
}

#[tokio::test]
async fn a_full_connection_opens_a_second_one_and_both_serve_shares() {
    let mut pool = Pool::start_fresh(&[]);
    let mut config = upstream_config(vec![pool.url("w")], Fallback::Gate);
    config.max_sessions_per_connection = Some(2);
    let (broker, upstream) = start_broker(config).await;
    wait_until("pool work", || upstream.has_work()).await;
    let mut sessions = Vec::new();
    for user in ["h1", "h2"] {
        sessions.push(open_session(&broker, user).await);
    }
    // The first connection is now full: a second one opens, and the third session is served by it.
    wait_until("a second connection", || upstream.status().iter().filter(|c| c.job.is_some()).count() == 2)
        .await;
    sessions.push(open_session(&broker, "h3").await);
    let status = upstream.status();
    assert_eq!(status.iter().map(|c| c.sessions).collect::<Vec<_>>(), vec![2, 1]);
    for (socket, job) in &mut sessions {
        assert_eq!(job.mode, WorkMode::Pool);
        submit_share(socket, job, 0).await;
    }
    let shares = pool.shares(3);
    assert!(shares.iter().all(|s| s["valid"] == true), "{shares:?}");
    let subscriptions = pool.seen.iter().filter(|e| e["event"] == "authorize").count();
    assert_eq!(subscriptions, 2);
}

/// One miner against a broker process until the broker closes the socket: the (job, nonce) of every
/// acknowledged share, and the close code.
async fn mine_until_closed(address: std::net::SocketAddr, hello: Value) -> (Vec<(String, u32)>, Option<u16>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await.unwrap();
    send(&mut socket, &hello).await;
    let mut job = None;
    let mut acked = Vec::new();
    let mut position = 0;
    loop {
        if let Some(job) = &job {
            let (nonce, next) = mine_from(job, position);
            position = next;
            let submit = json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)});
            if socket.send(Message::Text(submit.to_string().into())).await.is_err() {
                return (acked, None);
            }
        }
        // Read until this share's answer (or, before the first pool job, until one arrives).
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(&text).unwrap() {
                    ServerMessage::Accepted { job, nonce, .. } => {
                        acked.push((job, protocol::parse_nonce(&nonce).unwrap()));
                        break;
                    }
                    ServerMessage::Rejected { .. } => break,
                    ServerMessage::Job(next) if next.mode == WorkMode::Pool => {
                        let first = job.is_none();
                        job = Some(next);
                        position = 0;
                        if first {
                            break;
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(frame))) => return (acked, frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return (acked, None),
            }
        }
    }
}

// The pool helper blocks its thread while it waits: the miners run on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_share_and_no_pool_answer() {
    // Answers take 400 ms, so many are in flight when the signal comes.
    let mut pool = Pool::start_fresh(&["--answer-delay-ms", "400"]);
    let data = tempfile::tempdir().unwrap();
    let url = format!("stratum+tcp://minepass.test:x@127.0.0.1:{}", pool.port);
    let mut broker = start_process(data.path(), &["--pool", &url]);
    let miners: Vec<_> = (0..4)
        .map(|i| {
            let hello = hello(&broker.demo_site, &broker.demo_secret, &format!("reader-{i}"), None);
            tokio::spawn(mine_until_closed(broker.address, hello))
        })
        .collect();
    // Under load: the pool is answering a stream of the browsers' shares.
    pool.shares(20);
    let status = Command::new("kill").args(["-TERM", &broker.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = broker.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the broker did not exit within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "the broker exits cleanly after draining: {exit}");

    let mut acked = Vec::new();
    for miner in miners {
        let (shares, close) = miner.await.unwrap();
        assert_eq!(close, Some(1001), "sockets close with going-away");
        acked.extend(shares);
    }
    let key = minepass_broker::vault::KeySource::Default(data.path().join("master.key"));
    let (ledger, _) =
        minepass_broker::store::Ledger::open_with_key(ledger_location(data.path()), &key).await.unwrap();
    let site = ledger.site_by_key(&broker.demo_site).await.unwrap().unwrap();
    let mut logged = Vec::new();
    for i in 0..4 {
        if let Some((user, _, _)) = ledger.user_credits(site.id, &format!("reader-{i}")).await.unwrap() {
            logged.extend(
                ledger.user_shares(user).await.unwrap().into_iter().map(|(job, nonce, _)| (job, nonce)),
            );
        }
    }
    assert!(acked.len() >= 20, "{} acknowledged shares", acked.len());
    for share in &acked {
        assert!(logged.contains(share), "acknowledged share {share:?} lost");
    }
    // Every share the broker forwarded has the pool's answer in the ledger, and every share the pool
    // accepted (it answered before the broker exited) is recorded as accepted.
    let totals = ledger.pool_totals(None).await.unwrap();
    assert_eq!(totals.submitted, totals.accepted + totals.rejected + totals.unanswered, "{totals:?}");
    assert_eq!(totals.unanswered, 0, "{totals:?}");
    let valid = pool.shares(0).iter().filter(|e| e["valid"] == true).count() as u64;
    assert_eq!(totals.accepted, valid, "the pool accepted {valid}, the ledger says {totals:?}");
}
