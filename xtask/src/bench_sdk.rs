//! `cargo xtask bench-sdk [--json]`: the SDK benchmark (not a test).
//!
//! 1. Bytes: what a page loads before consent (`minepass.js`, minified) and the whole SDK after it (loader,
//!    client module and wasm, worker, the larger kernel build and its glue), raw and gzip.
//! 2. In headless Chromium against the real broker at its default settings (`tests/e2e/bench-sdk.mjs`):
//!    the time from the consent click to the first hash and to the first accepted share, and the
//!    throttle's measured duty cycle (hash rate at each setting over the rate unthrottled);
//! 3. a phone-like profile: Chromium in a cgroup capped at half a CPU, reporting 8 cores, unlocking the
//!    demo at its default quota: consent -> first share -> unlock, the workers it keeps, and the ETA
//!    the gate shows at 10 s and 30 s against the real remaining time;
//! 4. per engine (Chromium, Firefox ESR, WebKitGTK): consent -> first accepted share.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::json;

use crate::bench_broker::json_output;
use crate::build::sizes;
use crate::setup::{self, cargo, exec};

/// Everything a visitor's browser downloads once mining runs (the simd kernel: the larger build).
const SDK_FILES: &[&str] = &[
    "pkg/minepass.js",
    "pkg/worker.js",
    "pkg/minepass_client.js",
    "pkg/minepass_client_bg.wasm",
    "pkg/minepass_simd.js",
    "pkg/minepass_simd_bg.wasm",
];

pub fn run(args: &[String]) -> Result<()> {
    let json_only = crate::has_flag(args, "--json");
    crate::build::run()?;
    setup::ensure_chromium()?;
    setup::ensure_npm_packages()?;
    exec(cargo().args(["build", "--release", "--package", "minepass-broker", "--bin", "minepass-broker"]))?;

    let (before_raw, before_gzip) = sizes(&PathBuf::from(SDK_FILES[0]))?;
    let (mut sdk_raw, mut sdk_gzip) = (0, 0);
    for file in SDK_FILES {
        let (raw, gzip) = sizes(&PathBuf::from(file))?;
        sdk_raw += raw;
        sdk_gzip += gzip;
    }
    setup::ensure_engines()?;
    let phone = PhoneCgroup::make();
    let mut node = Command::new("node");
    node.arg("tests/e2e/bench-sdk.mjs")
        .env("MINEPASS_BROKER", "target/release/minepass-broker")
        .env("MINEPASS_CHROMIUM", setup::CHROMIUM)
        .env("GECKODRIVER", setup::geckodriver()?);
    match &phone {
        Ok(cgroup) => drop(node.env("MINEPASS_PHONE_CGROUP", &cgroup.procs)),
        Err(why) => eprintln!("phone profile skipped: {why:#}"),
    }
    let browser = json_output(&mut node)?;
    drop(phone);

    let mut report = json!({
        "before_consent_bytes": before_raw,
        "before_consent_gzip": before_gzip,
        "sdk_bytes": sdk_raw,
        "sdk_gzip": sdk_gzip,
    });
    for (key, value) in browser.as_object().into_iter().flatten() {
        report[key] = value.clone();
    }
    if !json_only {
        println!();
        println!("before consent:        {before_raw} B, {before_gzip} B gzip (target <= 15 KB gzip)");
        println!("whole SDK:             {sdk_raw} B, {sdk_gzip} B gzip (target <= 80 KB gzip)");
        println!(
            "consent -> first hash: {} ms; -> first accepted share: {} ms (target <= 10 s)",
            report["consent_to_first_hash_ms"], report["consent_to_first_share_ms"]
        );
        println!("throttle duty cycle:   {} (target within ±10% of 1 − throttle)", report["throttle"]);
        println!("phone profile:         {}", report["phone"]);
        println!("per engine:            {}", report["engines"]);
        println!();
    }
    println!("{report}");
    Ok(())
}

/// A CPU cgroup capped at half a CPU (the phone profile's), removed when dropped. cgroup v2 where it
/// is mounted with the cpu controller, else v1's cpu hierarchy; needs root.
struct PhoneCgroup {
    dir: PathBuf,
    /// The file a process writes its pid to, to join.
    procs: PathBuf,
}

impl PhoneCgroup {
    const PERIOD_US: u32 = 100_000;
    const QUOTA_US: u32 = 50_000;

    fn make() -> Result<PhoneCgroup> {
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let (dir, limit, value) = if v2.join("cgroup.controllers").exists() {
            std::fs::write(v2.join("cgroup.subtree_control"), "+cpu")
                .context("enabling the cpu controller")?;
            (v2.join("minepass-phone"), "cpu.max", format!("{} {}", Self::QUOTA_US, Self::PERIOD_US))
        } else {
            let v1 = v2.join("cpu");
            anyhow::ensure!(v1.join("cpu.cfs_quota_us").exists(), "no cgroup cpu controller here");
            (v1.join("minepass-phone"), "cpu.cfs_quota_us", Self::QUOTA_US.to_string())
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if dir.join("cpu.cfs_period_us").exists() {
            std::fs::write(dir.join("cpu.cfs_period_us"), Self::PERIOD_US.to_string())?;
        }
        std::fs::write(dir.join(limit), value).with_context(|| format!("capping {}", dir.display()))?;
        Ok(PhoneCgroup { procs: dir.join("cgroup.procs"), dir })
    }
}

impl Drop for PhoneCgroup {
    fn drop(&mut self) {
        // Empty once the browser has exited; a cgroup directory is removed with rmdir.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
