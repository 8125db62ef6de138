//! `cargo xtask bench-upstream [--json] [--clients N] [--seconds S] [--interval-ms I]`: the Stratum
//! upstream benchmark (not a test).
//!
//! The real pool of the upstream tests (`tests/pool/pool.cjs`: npm stratum-pool-sha256 under node)
//! at a pool difficulty of 2^-24, so that every browser share (256 hashes) is also a pool share and
//! is forwarded; a release broker with `--pool`; `loadgen load` with N WebSocket miners each
//! submitting a real share every I ms. Reported, from the broker's `/metrics`:
//! - forwarded shares per second (written upstream) and the pool's accepted count;
//! - the latency the broker adds to a forwarded share: from the browser's share reaching the broker
//!   (verification, durable commit) to its `mining.submit` written upstream, p50/p99;
//! - browser sessions one upstream connection serves (its extranonce2 space, after the bytes each
//!   session rolls) before a second connection is opened.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use serde_json::json;

use crate::bench::KillOnDrop;
use crate::bench_broker::{json_output, start_release_broker};
use crate::setup::{self, cargo, exec};

/// 2^-24: a pool share is worth 2^8 hashes, the size of the benchmark's browser shares.
const POOL_DIFFICULTY: &str = "0.000000059604644775390625";

pub fn run(args: &[String]) -> Result<()> {
    let json_only = crate::has_flag(args, "--json");
    let sink = crate::has_flag(args, "--sink");
    let number = |flag: &str, default: u32| -> Result<u32> {
        Ok(crate::flag_value(args, flag).map(str::parse).transpose()?.unwrap_or(default))
    };
    let clients = number("--clients", 2000)?;
    let seconds = number("--seconds", 20)?;
    let interval_ms = number("--interval-ms", 1000)?;
    setup::ensure_npm_packages()?;
    exec(
        cargo()
            .args(["build", "--release", "--package", "minepass-broker", "--bin", "minepass-broker"])
            .args(["--example", "loadgen"]),
    )?;

    let pool_shares = Arc::new(AtomicU64::new(0));
    let (pool_port, _pool) = if sink {
        (start_sink(Arc::clone(&pool_shares))?, None)
    } else {
        let (port, pool) = start_pool(Arc::clone(&pool_shares))?;
        (port, Some(pool))
    };

    let pool_url = format!("stratum+tcp://bench.worker:x@127.0.0.1:{pool_port}");
    let (broker, site, address) = start_release_broker("target/bench-upstream", &["--pool", &pool_url])?;
    // Sessions should start on pool work, not the gate fallback.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metric(&metrics(&address)?, "minepass_upstream_connections") < 1.0 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the broker never connected to the pool");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let load = json_output(
        Command::new("target/release/examples/loadgen")
            .args(["load", "--url", &format!("ws://{address}/ws"), "--site", &site])
            .args(["--clients", &clients.to_string(), "--seconds", &seconds.to_string()])
            .args(["--interval-ms", &interval_ms.to_string()]),
    )?;
    // Let the last answers arrive.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let text = metrics(&address)?;
    drop(broker);

    let capacity = text
        .lines()
        .find(|l| l.starts_with("minepass_upstream_connection_sessions{"))
        .and_then(|l| l.split("capacity=\"").nth(1)?.split('"').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let quantile = |q: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("minepass_pool_forward_latency_seconds{{quantile=\"{q}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map_or(0.0, |s| (s * 1e5).round() / 100.0)
    };
    let report = json!({
        "pool": if sink { "sink (answers every submit at once)" } else { "stratum-pool-sha256 (node)" },
        "clients": load["clients"],
        "clients_failed": load["clients_failed"],
        "first_error": load["first_error"],
        "browser_shares_per_s": load["shares_per_s"],
        // Submits happen only in the measured phase (the warm-up mines without submitting).
        "forwarded_per_s": (metric(&text, "minepass_pool_shares_submitted_total") / f64::from(seconds)).round(),
        "forwarded_total": metric(&text, "minepass_pool_shares_submitted_total"),
        "pool_accepted_total": metric(&text, "minepass_pool_shares_accepted_total"),
        "pool_valid_shares_seen": pool_shares.load(Ordering::Relaxed),
        "pool_unanswered_total": metric(&text, "minepass_pool_shares_unanswered_total"),
        "forward_p50_ms": quantile("0.5"),
        "forward_p99_ms": quantile("0.99"),
        "ack_p99_ms": load["ack_p99_ms"],
        "sessions_per_upstream_connection": capacity,
        "upstream_connections": metric(&text, "minepass_upstream_connections"),
    });
    if !json_only {
        println!();
        println!("miners:              {} ({} failed)", report["clients"], report["clients_failed"]);
        println!(
            "forwarded upstream:  {} shares/s of {} offered by the miners",
            report["forwarded_per_s"], report["browser_shares_per_s"]
        );
        println!(
            "pool answers:        {} accepted of {} forwarded ({} unanswered)",
            report["pool_accepted_total"], report["forwarded_total"], report["pool_unanswered_total"]
        );
        println!(
            "added latency:       p50 {} ms, p99 {} ms (share in -> submit written upstream)",
            report["forward_p50_ms"], report["forward_p99_ms"]
        );
        println!("sessions/connection: {} before a second upstream connection opens", capacity);
        println!();
    }
    println!("{report}");
    Ok(())
}

/// The real pool (`tests/pool/pool.cjs`); counts its valid share events.
fn start_pool(valid: Arc<AtomicU64>) -> Result<(u16, KillOnDrop)> {
    let pool_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut pool = KillOnDrop(
        Command::new("node")
            .args(["tests/pool/pool.cjs", "--port", &pool_port.to_string(), "--diff", POOL_DIFFICULTY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the pool (node)")?,
    );
    let (started_tx, started) = std::sync::mpsc::channel();
    {
        let shares = Arc::clone(&valid);
        let stdout = pool.0.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("@pool {\"event\":\"started\"") {
                    let _ = started_tx.send(());
                } else if line.starts_with("@pool {\"event\":\"share\",\"valid\":true") {
                    shares.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    started.recv_timeout(std::time::Duration::from_secs(30)).context("the pool did not start")?;

    Ok((pool_port, pool))
}

/// A Stratum endpoint that does nothing but answer: one job, and `true` to every submit at once. It
/// measures the broker's own forwarding ceiling, which the real pool (single-threaded node, a linear
/// duplicate search per job) hides. Not a pool: it verifies nothing.
fn start_sink(submits: Arc<AtomicU64>) -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().map_while(Result::ok).enumerate() {
            let submits = Arc::clone(&submits);
            std::thread::spawn(move || serve_sink(stream, index, &submits));
        }
    });
    Ok(port)
}

fn serve_sink(stream: std::net::TcpStream, index: usize, submits: &AtomicU64) -> Result<()> {
    let mut out = std::io::BufWriter::new(stream.try_clone()?);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        let request: serde_json::Value = serde_json::from_str(&line)?;
        line.clear();
        let id = &request["id"];
        let reply = match request["method"].as_str().unwrap_or_default() {
            "mining.subscribe" => json!({"id": id, "result": [[], format!("{index:08x}"), 4], "error": null}),
            "mining.configure" => json!({"id": id, "result": {}, "error": null}),
            "mining.submit" => {
                submits.fetch_add(1, Ordering::Relaxed);
                json!({"id": id, "result": true, "error": null})
            }
            _ => json!({"id": id, "result": true, "error": null}),
        };
        writeln!(out, "{reply}")?;
        if request["method"] == "mining.authorize" {
            let ntime = format!(
                "{:08x}",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs()
            );
            writeln!(
                out,
                "{}",
                json!({"id": null, "method": "mining.set_difficulty", "params": [2f64.powi(-24)]})
            )?;
            let notify = json!({"id": null, "method": "mining.notify", "params": [
                "1", "00".repeat(32), "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0d03", "ffffffff0100f2052a01000000015100000000",
                [], "20000000", "1b00ffff", ntime, true]});
            writeln!(out, "{notify}")?;
        }
        // Answer everything read so far in one write, like a pool under load.
        if reader.buffer().is_empty() {
            out.flush()?;
        }
    }
    Ok(())
}

/// The broker's `/metrics` text (a plain HTTP/1.0 GET on loopback).
fn metrics(address: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}
