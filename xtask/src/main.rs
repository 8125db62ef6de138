//! `cargo xtask`: the project's build, test, benchmark and demo commands, each doing its own
//! idempotent setup (toolchain target, wasm-bindgen CLI, wasm-pack, Chromium) so they work on a fresh
//! machine and in CI.

mod bench;
mod bench_broker;
mod bench_fleet;
mod bench_sdk;
mod bench_upstream;
mod build;
mod demo;
mod serve;
mod setup;
mod test;
mod tidy;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  build           the wasm builds (simd128 and plain kernels, SDK client) into pkg/, with sizes
  test            fmt, clippy, tidy, native tests, wasm-pack tests in headless Chromium
  bench [--json] [--ms N] [--engines chromium,firefox,webkit]
                  kernel benchmark in Chromium, Firefox ESR and WebKitGTK side by side (a
                  missing browser is reported as skipped), and natively
  bench-broker [--json] [--clients N] [--seconds S]
                  share verification and N concurrent WebSocket miners against the broker
  bench-fleet [--json] [--clients N] [--seconds S] [--interval-ms I] [--brokers 1,2,3]
                  PostgreSQL + n brokers behind HAProxy: durable shares/s, ack latency,
                  commits/s, RSS per broker, and the database's own ceiling
  bench-sdk [--json]
                  SDK bytes, consent to first hash and share, throttle duty cycle (Chromium)
  bench-upstream [--json] [--clients N] [--seconds S] [--interval-ms I]
                  shares forwarded to a real Stratum pool per second, the latency the broker
                  adds, sessions per upstream connection
  demo [--port N] [--pool]
                  build everything and start the broker, which serves the demo (--pool: and
                  a local Stratum pool it mines into)
  tidy            repository hygiene checks (module docs)
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    std::env::set_current_dir(project_root())?;
    match command.as_str() {
        "build" => build::run().map(drop),
        "test" => test::run(),
        "bench" => bench::run(&rest),
        "bench-broker" => bench_broker::run(&rest),
        "bench-fleet" => bench_fleet::run(&rest),
        "bench-sdk" => bench_sdk::run(&rest),
        "bench-upstream" => bench_upstream::run(&rest),
        "demo" => demo::run(&rest),
        "tidy" => tidy::run(),
        "" | "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// The workspace root (xtask lives one level below it).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

/// Whether `flag` was passed.
fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

/// The value after `flag`, if any.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}
