//! `cargo xtask demo [--port N] [--pool]`: builds the wasm and starts the broker (embedded SQLite
//! ledger under `./data`, a demo site created on first run), which serves the demo publisher at
//! `/demo/`, the kernel demo and the SDK files. With `--pool`, a local Stratum pool (the test pool,
//! `tests/pool/pool.cjs`: npm stratum-pool-sha256 on a stand-in node) runs too and the broker mines
//! into it, so the demo shows pool mode without a real pool account.

use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::bench::KillOnDrop;
use crate::setup::{self, cargo, exec};

/// The local pool's port and share difficulty (about 2^16 hashes a pool share).
const DEMO_POOL_PORT: u16 = 3333;
const DEMO_POOL_DIFFICULTY: &str = "0.0000152587890625";

pub fn run(args: &[String]) -> Result<()> {
    let port: u16 = crate::flag_value(args, "--port").map(str::parse).transpose()?.unwrap_or(8080);
    crate::build::run()?;
    exec(cargo().args(["build", "--package", "minepass-broker"]))?;
    let mut serve = cargo();
    serve
        .args(["run", "--quiet", "--package", "minepass-broker", "--", "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    let _pool = if crate::has_flag(args, "--pool") {
        setup::ensure_npm_packages()?;
        let pool = KillOnDrop(
            Command::new("node")
                .args(["tests/pool/pool.cjs", "--port", &DEMO_POOL_PORT.to_string()])
                .args(["--diff", DEMO_POOL_DIFFICULTY])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .context("starting the local pool (node)")?,
        );
        serve.args(["--pool", &format!("stratum+tcp://demo.worker:x@127.0.0.1:{DEMO_POOL_PORT}")]);
        println!("Local Stratum pool (stratum-pool-sha256) on 127.0.0.1:{DEMO_POOL_PORT}");
        Some(pool)
    } else {
        None
    };
    println!();
    println!("MinePass demo publisher: http://127.0.0.1:{port}/demo/");
    println!("  kernel demo: http://127.0.0.1:{port}/   benchmark page: http://127.0.0.1:{port}/bench.html");
    println!("  status: cargo run -q -p minepass-broker -- status --url http://127.0.0.1:{port}");
    println!("Press Ctrl-C to stop.");
    exec(&mut serve)
}
