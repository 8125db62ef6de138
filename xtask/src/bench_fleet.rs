//! `cargo xtask bench-fleet [--json] [--clients N] [--seconds S] [--interval-ms I] [--brokers 1,2,3]`:
//! the fleet benchmark (not a test). On this one box: a throwaway PostgreSQL cluster, then for each
//! fleet size n, n release brokers on one fresh ledger behind HAProxy, loaded by `loadgen load`
//! through the balancer (its round robin spreads the miners). Reported per size: durable shares/s,
//! ack p50/p99, ledger commits/s and shares per commit (from the brokers' /metrics), each broker's
//! RSS. First, the database's own ceiling with the committer's statements (`loadgen db`). On a
//! 2-core box the brokers, the database and the load generator share the cores: the numbers are
//! for ratios within a run, and the model in docs/SCALE.md says which are measured.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::KillOnDrop;
use crate::bench_broker::{json_output, start_release_broker_with};
use crate::setup::{cargo, exec};

// The broker tests' throwaway cluster, shared as source (std and libc only).
#[path = "../../broker/tests/common/postgres.rs"]
mod postgres;

pub fn run(args: &[String]) -> Result<()> {
    let json_only = crate::has_flag(args, "--json");
    let number = |flag: &str, default: u32| -> Result<u32> {
        Ok(crate::flag_value(args, flag).map(str::parse).transpose()?.unwrap_or(default))
    };
    let (clients, seconds, interval_ms) =
        (number("--clients", 6000)?, number("--seconds", 20)?, number("--interval-ms", 2000)?);
    let sizes: Vec<usize> = crate::flag_value(args, "--brokers")
        .unwrap_or("1,2,3")
        .split(',')
        .map(|n| n.trim().parse().context("--brokers takes sizes like 1,2,3"))
        .collect::<Result<_>>()?;
    crate::setup::ensure_postgresql()?;
    crate::setup::ensure_haproxy()?;
    exec(
        cargo()
            .args(["build", "--release", "--package", "minepass-broker", "--bin", "minepass-broker"])
            .args(["--example", "loadgen"]),
    )?;
    let loadgen = "target/release/examples/loadgen";
    let cluster = postgres::Cluster::start();

    // The database's ceiling: batches shaped like a loaded committer's, from several writers.
    let mut ceiling = Vec::new();
    for (batch, writers) in [(16, 3), (64, 3), (256, 3)] {
        let url = cluster.create_database();
        ceiling.push(json_output(
            Command::new(loadgen).args(["db", "--database", &url, "--seconds", "5"]).args([
                "--batch",
                &batch.to_string(),
                "--writers",
                &writers.to_string(),
            ]),
        )?);
    }

    let mut fleets = Vec::new();
    for &size in &sizes {
        let url = cluster.create_database();
        let key = hex(&random_bytes());
        let mut brokers = Vec::new();
        let mut site = String::new();
        for i in 0..size {
            let data = format!("target/bench-fleet/broker-{i}");
            let extra = ["--database", &url, "--public-url", "http://fleet.bench"];
            let (broker, demo, address) =
                start_release_broker_with(&data, &extra, &[("MINEPASS_KEY", &key)])?;
            if !demo.is_empty() {
                site = demo;
            }
            brokers.push((broker, address));
        }
        let balancer = start_haproxy(&brokers.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>())?;
        let before: Vec<(f64, f64)> = brokers.iter().map(|(_, a)| commits(a)).collect::<Result<_>>()?;
        let load = json_output(
            Command::new(loadgen)
                .args(["load", "--url", &format!("ws://{}/ws", balancer.1), "--site", &site])
                .args(["--clients", &clients.to_string(), "--seconds", &seconds.to_string()])
                .args(["--interval-ms", &interval_ms.to_string()]),
        )?;
        let after: Vec<(f64, f64)> = brokers.iter().map(|(_, a)| commits(a)).collect::<Result<_>>()?;
        let (commits_total, shares_total) =
            before.iter().zip(&after).fold((0.0, 0.0), |(c, s), (b, a)| (c + a.0 - b.0, s + a.1 - b.1));
        let rss: Vec<u64> = brokers.iter().map(|(b, _)| rss_mb(b.0.id())).collect();
        fleets.push(json!({
            "brokers": size,
            "clients": load["clients"],
            "clients_failed": load["clients_failed"],
            "shares_per_s": load["shares_per_s"],
            "ack_p50_ms": load["ack_p50_ms"],
            "ack_p99_ms": load["ack_p99_ms"],
            "commits_per_s": (commits_total / f64::from(seconds)).round(),
            "shares_per_commit": ((shares_total / commits_total.max(1.0)) * 10.0).round() / 10.0,
            "broker_rss_mb": rss,
        }));
        drop(balancer);
        drop(brokers);
    }
    let report = json!({ "database_ceiling": ceiling, "fleets": fleets });
    if !json_only {
        println!();
        for c in &ceiling {
            println!(
                "database ceiling: batch {:>3} x {} writers: {} rows/s, {} commits/s (commit p99 {} ms)",
                c["batch"], c["writers"], c["rows_per_s"], c["commits_per_s"], c["commit_p99_ms"]
            );
        }
        for f in &fleets {
            println!(
                "{} broker(s): {} shares/s durable, ack p50 {} ms p99 {} ms, {} commits/s ({} shares each), RSS {} MB",
                f["brokers"],
                f["shares_per_s"],
                f["ack_p50_ms"],
                f["ack_p99_ms"],
                f["commits_per_s"],
                f["shares_per_commit"],
                f["broker_rss_mb"]
            );
        }
        println!();
    }
    println!("{report}");
    Ok(())
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("/dev/urandom");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HAProxy in front of `backends` (WebSockets in `mode http`, round robin); returns it and its
/// address.
fn start_haproxy(backends: &[String]) -> Result<(KillOnDrop, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    drop(listener);
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("    server broker{i} {b} check inter 1s\n"))
        .collect();
    // Two descriptors per proxied connection, within this box's 20,000 (more miners need a higher
    // `ulimit -n` and maxconn).
    let config = format!(
        "global\n    maxconn 9000\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 120s\n    timeout server 120s\n\
         \x20   timeout tunnel 1h\n    retries 3\n    option redispatch\n\
         frontend fleet\n    bind {address}\n    maxconn 9000\n    default_backend brokers\n\
         backend brokers\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}"
    );
    std::fs::create_dir_all("target/bench-fleet")?;
    std::fs::write("target/bench-fleet/haproxy.cfg", config)?;
    let haproxy = KillOnDrop(
        Command::new("haproxy")
            .args(["-db", "-f", "target/bench-fleet/haproxy.cfg"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting haproxy")?,
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(&address).is_ok() {
            return Ok((haproxy, address));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("haproxy did not listen on {address}")
}

/// (ledger commits, committed shares) so far, from a broker's /metrics.
fn commits(address: &str) -> Result<(f64, f64)> {
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let value = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    };
    Ok((value("minepass_ledger_commits_total"), value("minepass_ledger_committed_shares_total")))
}

fn rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        })
        .map_or(0, |kb: u64| kb / 1024)
}
