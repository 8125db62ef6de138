//! `cargo xtask bench-broker [--json] [--clients N] [--seconds S]`: the broker benchmark (not a test).
//!
//! 1. Share verification on one core (`loadgen verify`).
//! 2. A release broker on 127.0.0.1 with a fresh ledger and tiny shares, loaded by `loadgen load`: N
//!    concurrent WebSocket miners, each submitting a real share about every 4 s; the latency from
//!    `submit` to the durable `accepted` is measured in steady state. The broker's resident memory is
//!    read from /proc at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::KillOnDrop;
use crate::setup::{cargo, exec};

pub fn run(args: &[String]) -> Result<()> {
    let json_only = crate::has_flag(args, "--json");
    let clients: u32 = crate::flag_value(args, "--clients").map(str::parse).transpose()?.unwrap_or(10_000);
    let seconds: u32 = crate::flag_value(args, "--seconds").map(str::parse).transpose()?.unwrap_or(20);
    exec(
        cargo()
            .args(["build", "--release", "--package", "minepass-broker", "--bin", "minepass-broker"])
            .args(["--example", "loadgen"]),
    )?;
    let loadgen = "target/release/examples/loadgen";
    let verify = json_output(Command::new(loadgen).args(["verify", "--seconds", "3"]))?;

    let (broker, site, address) = start_release_broker("target/bench-broker", &[])?;
    let load =
        json_output(
            Command::new(loadgen)
                .args(["load", "--url", &format!("ws://{address}/ws"), "--site", &site])
                .args(["--clients", &clients.to_string(), "--seconds", &seconds.to_string()]),
        )?;
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", broker.0.id()))?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    drop(broker);

    let mut report = json!({ "verify_per_s_core": verify["verify_per_s_core"], "rss_mb": (rss_kb as f64 / 1024.0).round() });
    for (key, value) in load.as_object().into_iter().flatten() {
        report[key] = value.clone();
    }
    if !json_only {
        println!();
        println!("share verification:  {} /s on one core (target >= 1,000,000)", report["verify_per_s_core"]);
        println!("concurrent miners:   {} ({} failed)", report["clients"], report["clients_failed"]);
        println!("shares:              {} /s", report["shares_per_s"]);
        println!(
            "durable ack:         p50 {} ms, p99 {} ms (target p99 <= 50 ms)",
            report["ack_p50_ms"], report["ack_p99_ms"]
        );
        println!("broker memory:       {} MB resident", report["rss_mb"]);
        println!();
    }
    println!("{report}");
    Ok(())
}

/// The release broker on 127.0.0.1 with a fresh ledger in `data` and tiny shares (256 hashes, so the
/// load generator's miners find them at once), plus `extra` serve flags. Returns the process, the
/// demo site's key and the address it listens on; its output is drained in the background.
pub fn start_release_broker(data: &str, extra: &[&str]) -> Result<(KillOnDrop, String, String)> {
    start_release_broker_with(data, extra, &[])
}

/// [`start_release_broker`] with environment variables (a fleet's shared `MINEPASS_KEY`). The demo
/// site key is empty when another broker on the same ledger created it.
pub fn start_release_broker_with(
    data: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<(KillOnDrop, String, String)> {
    let _ = std::fs::remove_dir_all(data);
    let mut broker = KillOnDrop(
        Command::new("target/release/minepass-broker")
            .args(["serve", "--listen", "127.0.0.1:0", "--min-share-work", "256", "--max-share-work", "256"])
            .args(["--max-connections-per-address", "1000000", "--data", data])
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the broker")?,
    );
    let mut lines = BufReader::new(broker.0.stdout.take().expect("piped")).lines();
    let (mut site, mut address) = (String::new(), String::new());
    while address.is_empty() {
        let line = lines.next().context("the broker exited before listening")??;
        if let Some(key) = line.trim().strip_prefix("site key:") {
            site = key.trim().to_owned();
        }
        if let Some(rest) = line.strip_prefix("MinePass broker listening on http://") {
            address = rest.split('/').next().unwrap_or_default().to_owned();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((broker, site, address))
}

/// Runs a benchmark helper and parses the JSON line it prints last.
pub fn json_output(cmd: &mut Command) -> Result<Value> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("running {name}"))?;
    if !out.status.success() {
        bail!("{name} failed with {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).with_context(|| format!("{name} printed {text}"))
}
