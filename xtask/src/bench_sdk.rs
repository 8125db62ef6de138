//! `cargo xtask bench-sdk [--json]`: the SDK benchmark (not a test).
//!
//! 1. Bytes: what a page loads before consent (`minepass.js`, minified) and the whole SDK after it (loader,
//!    client module and wasm, worker, the larger kernel build and its glue), raw and gzip.
//! 2. In headless Chromium against the real broker at its default settings (`tests/e2e/bench-sdk.mjs`):
//!    the time from the consent click to the first hash and to the first accepted share, and the
//!    throttle's measured duty cycle (hash rate at each setting over the rate unthrottled).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
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
    let browser = json_output(
        Command::new("node")
            .arg("tests/e2e/bench-sdk.mjs")
            .env("MINEPASS_BROKER", "target/release/minepass-broker")
            .env("MINEPASS_CHROMIUM", setup::CHROMIUM),
    )?;

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
        println!();
    }
    println!("{report}");
    Ok(())
}
