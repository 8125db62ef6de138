//! `cargo xtask bench [--json] [--ms N]`: the kernel benchmark. A benchmark, not a test: it measures
//! and reports, and checks the targets only to print them.
//!
//! Browser: headless Chromium opens `www/bench.html`, which times each kernel in one worker (warmed up,
//! then run for `--ms`, default 3000) and the simd kernel in 1..hardwareConcurrency workers, and posts
//! the numbers back. Native: `examples/native_bench.rs` built with default flags and with
//! `-C target-cpu=native`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::serve::StaticServer;
use crate::setup::{self, cargo, exec};

pub fn run(args: &[String]) -> Result<()> {
    let json_only = crate::has_flag(args, "--json");
    let ms: u64 = crate::flag_value(args, "--ms").map(str::parse).transpose()?.unwrap_or(3000);
    crate::build::run()?;
    setup::ensure_chromium()?;

    let seconds = format!("{}", ms as f64 / 1000.0);
    let native = native_bench("target", "", &seconds)?;
    let native_max = native_bench("target/native-cpu", "-C target-cpu=native", &seconds)?;
    let browser = browser_bench(ms)?;

    let number = |v: &Value, key: &str| v[key].as_f64().ok_or_else(|| anyhow!("no {key} in {v}"));
    let simd = number(&browser, "simd_mhs")?;
    let native_mhs = number(&native, "sha2_mhs")?;
    let sha2_wasm = number(&browser, "sha2_wasm_mhs")?;
    let workers = browser["workers"].as_array().cloned().unwrap_or_default();
    let one = workers.first().and_then(|w| w["mhs"].as_f64()).unwrap_or(0.0);
    let scaling: Vec<Value> = workers
        .iter()
        .map(|w| {
            let n = w["n"].as_f64().unwrap_or(1.0);
            json!({"n": w["n"], "mhs": round(w["mhs"].as_f64().unwrap_or(0.0)), "efficiency": round(w["mhs"].as_f64().unwrap_or(0.0) / (n * one))})
        })
        .collect();
    let report = json!({
        "simd_mhs": round(simd),
        "scalar_mhs": round(number(&browser, "scalar_mhs")?),
        "sha2_wasm_mhs": round(sha2_wasm),
        "native_mhs": round(native_mhs),
        "native_max_mhs": round(number(&native_max, "sha2_mhs")?),
        "native_scalar_kernel_mhs": round(number(&native, "scalar_kernel_mhs")?),
        "workers": scaling,
        "simd_vs_native": round(simd / native_mhs),
        "simd_vs_sha2_wasm": round(simd / sha2_wasm),
        "sha_ni": native["sha_ni"],
        "browser": browser["userAgent"],
        "cpu": cpu_model(),
        "ms": ms,
    });
    if json_only {
        println!("{report}");
        return Ok(());
    }
    print_table(&report);
    println!("{report}");
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_table(r: &Value) {
    let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
    println!();
    println!("{:<44} {:>8}", "sha256d nonce search, one thread", "MH/s");
    println!("{:<44} {:>8.2}", "wasm simd128 kernel (Chromium)", f("simd_mhs"));
    println!("{:<44} {:>8.2}", "wasm scalar kernel, plain build (Chromium)", f("scalar_mhs"));
    println!("{:<44} {:>8.2}", "wasm sha2 crate, plain build (Chromium)", f("sha2_wasm_mhs"));
    println!("{:<44} {:>8.2}", "native sha2 crate, default flags", f("native_mhs"));
    println!("{:<44} {:>8.2}", "native sha2 crate, target-cpu=native", f("native_max_mhs"));
    println!("{:<44} {:>8.2}", "native MinePass scalar kernel", f("native_scalar_kernel_mhs"));
    println!();
    for w in r["workers"].as_array().into_iter().flatten() {
        println!(
            "simd128 kernel, {} workers: {:>8.2} MH/s ({:.0}% of linear)",
            w["n"],
            w["mhs"].as_f64().unwrap_or(0.0),
            100.0 * w["efficiency"].as_f64().unwrap_or(0.0)
        );
    }
    let check = |ok: bool| if ok { "met" } else { "NOT met" };
    println!();
    println!(
        "simd / native    = {:.2} (target >= 0.70: {})",
        f("simd_vs_native"),
        check(f("simd_vs_native") >= 0.7)
    );
    println!(
        "simd / sha2 wasm = {:.2} (target >= 3.50: {})",
        f("simd_vs_sha2_wasm"),
        check(f("simd_vs_sha2_wasm") >= 3.5)
    );
    let scaling_ok =
        r["workers"].as_array().into_iter().flatten().all(|w| w["efficiency"].as_f64().unwrap_or(0.0) >= 0.9);
    println!("N workers >= 0.9·N × one worker: {}", check(scaling_ok));
    println!();
}

/// Builds and runs the native benchmark with `rustflags` in `target_dir`.
fn native_bench(target_dir: &str, rustflags: &str, seconds: &str) -> Result<Value> {
    exec(
        cargo()
            .args([
                "build",
                "--release",
                "--package",
                "minepass",
                "--example",
                "native_bench",
                "--target-dir",
                target_dir,
            ])
            .env("RUSTFLAGS", rustflags),
    )?;
    let binary = format!("{target_dir}/release/examples/native_bench");
    let out = Command::new(&binary).arg(seconds).output().with_context(|| format!("running {binary}"))?;
    if !out.status.success() {
        bail!("{binary} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Serves the bench page, opens it in headless Chromium and waits for the posted results.
fn browser_bench(ms: u64) -> Result<Value> {
    let server = StaticServer::start(0)?;
    let profile = std::env::temp_dir().join(format!("minepass-bench-{}", std::process::id()));
    let url = format!("http://127.0.0.1:{}/bench.html?report&ms={ms}", server.port);
    eprintln!("opening {url} in headless Chromium");
    let mut chromium = KillOnDrop(
        Command::new(setup::CHROMIUM)
            .args(setup::chromium_flags(&profile))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Chromium")?,
    );
    let timeout = Duration::from_millis(ms * 20 + 120_000);
    let body = server.results.recv_timeout(timeout).context("the benchmark page did not report in time")?;
    let _ = chromium.0.kill();
    let _ = std::fs::remove_dir_all(&profile);
    let result: Value = serde_json::from_str(&body)?;
    if let Some(error) = result["error"].as_str() {
        bail!("benchmark page failed: {error}");
    }
    Ok(result)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default()
}

/// A child process that is killed when dropped, so an error path never leaves Chromium running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
