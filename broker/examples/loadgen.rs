//! The broker's benchmark (`cargo xtask bench-broker`), not a test.
//!
//! - `loadgen verify [--seconds S]`: share verification on one core, through the broker's own
//!   `SessionWork::verify` (nonce parsing, job lookup, duplicate check, sha256d, 256-bit compare).
//! - `loadgen load --url ws://… --site KEY [--clients N] [--seconds S] [--interval-ms I]`: N concurrent
//!   WebSocket miners on loopback. Warm-up: each connects, says hello and mines its real shares (the
//!   broker must be started with tiny shares). Then each submits one every I ms for S seconds; the
//!   latency is measured from the scheduled `submit` to the durable `accepted`.
//!
//! - `loadgen db --database URL [--seconds S] [--batch B] [--writers W]`: the ledger's own ceiling:
//!   W tasks commit batches of B synthetic shares through `Ledger::commit_shares` (the committer's
//!   statements, one transaction per batch) as fast as the database takes them.
//!
//! Each prints one JSON line.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use minepass::kernel::Job;
use minepass::protocol::{self, ServerMessage};
use minepass::target::Target;
use minepass_broker::work::{Jobs, SessionWork, Vardiff};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("verify") => verify(arg(&args, "--seconds", 3.0)),
        Some("load") => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
            runtime.block_on(load(
                arg(&args, "--url", String::new()),
                arg(&args, "--site", String::new()),
                arg(&args, "--clients", 1000),
                arg(&args, "--seconds", 20.0),
                arg(&args, "--interval-ms", 4000),
            ));
        }
        Some("db") => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
            runtime.block_on(database_ceiling(
                arg(&args, "--database", String::new()),
                arg(&args, "--seconds", 10.0),
                arg(&args, "--batch", 64),
                arg(&args, "--writers", 4),
            ));
        }
        _ => eprintln!(
            "usage: loadgen verify | load --url URL --site KEY [--clients N] [--seconds S] | db --database URL"
        ),
    }
}

/// Rows per second the ledger commits with the committer's statements and batch shape (the shares
/// are synthetic: verification is not what this measures).
async fn database_ceiling(database: String, seconds: f64, batch: usize, writers: usize) {
    use minepass_broker::store::{Ledger, Location, ShareRecord};
    let vault = std::sync::Arc::new(minepass_broker::vault::Vault::ephemeral());
    let ledger = Ledger::open(Location::parse(&database), vault).await.expect("the ledger opens");
    let site = ledger.add_site("db ceiling").await.expect("a site");
    let site_id = ledger.site_by_key(&site.key).await.unwrap().unwrap().id;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let (mut commits, mut times) = (0u64, Vec::new());
                while Instant::now() < deadline {
                    let shares: Vec<ShareRecord> = (0..batch)
                        .map(|i| ShareRecord {
                            session: format!("db{writer}"),
                            job_id: format!("db{writer}.{commits}"),
                            job_at: minepass_broker::store::now_ms(),
                            nonce: i as u32,
                            site_id,
                            // A few hundred distinct users per writer, as many miners would be.
                            user: format!("user-{writer}-{}", (commits as usize * batch + i) % 512),
                            content_id: None,
                            header: [0; 80],
                            target: [0xff; 32],
                            work: 256,
                            pool: None,
                        })
                        .collect();
                    let started = Instant::now();
                    ledger.commit_shares(&shares, &[]).await.expect("the batch commits");
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                    commits += 1;
                }
                (commits, times)
            })
        })
        .collect();
    let (mut commits, mut times) = (0u64, Vec::new());
    for task in tasks {
        let (c, mut t) = task.await.unwrap();
        commits += c;
        times.append(&mut t);
    }
    times.sort_by(f64::total_cmp);
    let pct =
        |p: f64| times.get(((times.len() as f64 * p) as usize).min(times.len() - 1)).copied().unwrap_or(0.0);
    println!(
        "{}",
        json!({
            "backend": ledger.backend_name(),
            "batch": batch,
            "writers": writers,
            "commits_per_s": (commits as f64 / seconds).round(),
            "rows_per_s": (commits as f64 * batch as f64 / seconds).round(),
            "commit_p50_ms": (pct(0.5) * 100.0).round() / 100.0,
            "commit_p99_ms": (pct(0.99) * 100.0).round() / 100.0,
        })
    );
}

/// At least `count` shares of a job, mined natively.
fn mine(header: &[u8], target: Target, count: usize) -> Vec<u32> {
    let job = Job::new(header, target).expect("80-byte header");
    let (mut hits, mut from) = (Vec::new(), 0u32);
    while hits.len() < count {
        job.scan(from, 1024, &mut hits).expect("range fits");
        from += 1024;
    }
    hits
}

fn verify(seconds: f64) {
    let vardiff = Vardiff { interval: Duration::from_secs(4), min_work: 1, max_work: 1 << 60 };
    let source = Jobs::gate();
    let mut verified = 0u64;
    let mut busy = Duration::ZERO;
    // Jobs of work 1 (the largest target), so every nonce is a valid share and no mining is needed;
    // verification does the same work as for any target: parse, look up, sha256d, compare, record.
    while busy.as_secs_f64() < seconds {
        let mut work = SessionWork::new("bench".into(), vardiff, false);
        let job = work.issue(&source, 1).expect("gate mode always has work").clone();
        let nonces: Vec<String> = (0..100_000u32).map(protocol::format_nonce).collect();
        let started = Instant::now();
        for nonce in &nonces {
            work.verify(&source, &job.id, nonce).expect("every nonce meets the largest target");
        }
        busy += started.elapsed();
        verified += nonces.len() as u64;
    }
    println!("{}", json!({ "verify_per_s_core": (verified as f64 / busy.as_secs_f64()).round() }));
}

async fn load(url: String, site: String, clients: usize, seconds: f64, interval_ms: u64) {
    let interval = Duration::from_millis(interval_ms.max(1));
    // Enough shares for the whole run, mined before it starts: mining on the load generator's
    // runtime while it measures would delay its own reads and be counted as broker latency.
    let stock = (seconds * 1000.0 / interval.as_millis() as f64).ceil() as usize + 2;
    let (report, mut results) = tokio::sync::mpsc::unbounded_channel::<Result<Vec<f64>, String>>();
    let (ready, mut readies) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (start, started) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    for client in 0..clients {
        let (url, site, report, ready, started) =
            (url.clone(), site.clone(), report.clone(), ready.clone(), started.clone());
        tokio::spawn(async move {
            let miner = Miner { client, url, site, interval, seconds, stock };
            let _ = report.send(miner.run(ready, started).await);
        });
        // Open connections at a steady pace rather than all in one burst.
        if client % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop((report, ready));

    // Warm-up (not measured): every client connected, said hello and holds its shares, or failed.
    let (mut latencies, mut failed, mut first_error) = (Vec::new(), 0, None);
    let mut record = |result: Result<Vec<f64>, String>| match result {
        Ok(mut samples) => latencies.append(&mut samples),
        Err(error) => {
            failed += 1;
            first_error.get_or_insert(error);
        }
    };
    let mut waiting = clients;
    while waiting > 0 {
        tokio::select! {
            Some(()) = readies.recv() => waiting -= 1,
            Some(result) = results.recv() => { record(result); waiting -= 1; }
            else => break,
        }
    }
    // Steady state: each client submits on its own phase of the interval, for `seconds`.
    let _ = start.send(Some(tokio::time::Instant::now() + Duration::from_millis(100)));
    while let Some(result) = results.recv().await {
        record(result);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        json!({
            "clients": clients,
            "clients_failed": failed,
            "seconds_measured": seconds,
            "first_error": first_error,
            "shares": latencies.len(),
            "shares_per_s": (latencies.len() as f64 / seconds * 10.0).round() / 10.0,
            "ack_p50_ms": (pct(0.50) * 100.0).round() / 100.0,
            "ack_p90_ms": (pct(0.90) * 100.0).round() / 100.0,
            "ack_p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "ack_max_ms": (pct(1.0) * 100.0).round() / 100.0,
        })
    );
}

/// One simulated miner.
struct Miner {
    client: usize,
    url: String,
    site: String,
    interval: Duration,
    seconds: f64,
    /// Shares to mine before the measured run.
    stock: usize,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Miner {
    /// Connects, says hello and mines its shares, reports `ready`, waits for the start, then submits a
    /// share every `interval` for `seconds`; returns the ack latencies in ms.
    async fn run(
        self,
        ready: tokio::sync::mpsc::UnboundedSender<()>,
        mut started: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
    ) -> Result<Vec<f64>, String> {
        // Small buffers (the 128 KiB defaults cost 1.3 GB and much CPU at 10,000 sockets) and no Nagle delay.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(&self.url, Some(config), true)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let client = self.client;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let hello = json!({
            "type": "hello", "v": 1, "site": self.site,
            "consent": {"id": format!("c{client}"), "given_at": now, "expires_at": now + 3_600_000},
            "client": {"threads": 1, "simd": false, "hashrate": 1},
        });
        socket.send(Message::Text(hello.to_string().into())).await.map_err(|e| e.to_string())?;
        let mut job = loop {
            match next(&mut socket).await? {
                ServerMessage::Job(job) => break job,
                ServerMessage::Error { code, .. } => return Err(format!("hello refused: {code}")),
                _ => {}
            }
        };
        let mut found = self.mine(&job).await?;
        let _ = ready.send(());
        let start = *started.wait_for(Option::is_some).await.map_err(|e| e.to_string())?;
        let start = start.expect("waited for Some");
        let deadline = start + Duration::from_secs_f64(self.seconds);
        // Open-loop schedule: client i submits at phase_i + k·interval whatever the broker's answers, so
        // a slow ack cannot bunch the clients together (closed-loop clients that sleep after each ack
        // synchronise into bursts), and latency counts from the scheduled time, so a backlog is measured
        // rather than hidden (no coordinated omission).
        let phase = self.interval.mul_f64((client as u64 * 7919 % 10_007) as f64 / 10_007.0);
        let mut scheduled = start + phase;
        let mut latencies = Vec::new();
        while scheduled < deadline {
            tokio::time::sleep_until(scheduled).await;
            let Some(nonce) = found.pop() else { return Err("ran out of shares".into()) };
            let submit = json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)});
            socket.send(Message::Text(submit.to_string().into())).await.map_err(|e| e.to_string())?;
            loop {
                match next(&mut socket).await? {
                    ServerMessage::Accepted { .. } => {
                        latencies.push(scheduled.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                    // A retarget: the shares in stock are for the old job (still live for this answer).
                    ServerMessage::Job(new) => {
                        job = new;
                        found = self.mine(&job).await?;
                    }
                    ServerMessage::Rejected { code, .. } | ServerMessage::Error { code, .. } => {
                        return Err(format!("share refused: {code}"));
                    }
                    _ => {}
                }
            }
            scheduled += self.interval;
        }
        let _ = socket.close(None).await;
        Ok(latencies)
    }

    /// The job's shares, mined on a blocking thread.
    async fn mine(&self, job: &protocol::Job) -> Result<Vec<u32>, String> {
        let header = hex::decode(&job.header).map_err(|e| e.to_string())?;
        let target = Target::from_le_bytes(&hex::decode(&job.target).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let stock = self.stock;
        tokio::task::spawn_blocking(move || mine(&header, target, stock)).await.map_err(|e| e.to_string())
    }
}

async fn next(socket: &mut Socket) -> Result<ServerMessage, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Err(_) => return Err("timeout".into()),
            Ok(None) => return Err("closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(&text).map_err(|e| e.to_string());
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}
