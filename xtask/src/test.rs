//! `cargo xtask test`: every check and test, in the order that fails fastest. `.ci/run` runs exactly
//! this.
//!
//! 1. tidy, `cargo fmt --check`, clippy (native, wasm32+simd128, and the wasm32 SDK client) with
//!    `-D warnings`;
//! 2. native tests of the whole workspace (the broker's upstream tests against a real Stratum pool
//!    from npm, run by node; its kits tests run the publisher kits under node, python3 and php),
//!    then the broker's ledger-backed suites (broker, economics, trust, upstream) again on
//!    PostgreSQL (`MINEPASS_TEST_BACKEND=postgres`: each test binary runs a throwaway cluster); the
//!    fleet tests (several broker processes on one PostgreSQL ledger, HAProxy in front) run in the
//!    first pass;
//! 3. the wasm builds (they must link and bind);
//! 4. the crate's tests in headless Chromium with `wasm-pack test --headless --chrome`, once per kernel
//!    build, each asserting it really runs the kernel it was built for, and the simd build's in
//!    headless Firefox ESR (`--firefox`, geckodriver);
//! 5. the SDK end to end: `tests/e2e/sdk.mjs` drives Debian's Chromium (playwright-core) against the
//!    real broker binary; `tests/e2e/engines.mjs` runs the core scenarios in Chromium, Firefox ESR
//!    and WebKitGTK, each through its own WebDriver server;
//! 6. the app host bridge: the desktop host (`hosts/desktop`, wry + tao on WebKitGTK; its own
//!    workspace, checked with fmt and clippy here) under Xvfb, driven by `tests/e2e/host.mjs`.

use std::process::Command;

use anyhow::Result;

use crate::build::{CLIENT, FLAVOURS};
use crate::setup::{self, Tally, cargo, exec};

/// Where the desktop host builds (its own workspace, so its own lock and dependencies).
const HOST_TARGET: &str = "target/host";

/// The broker's test binaries that run on both backends.
const POSTGRES_SUITES: [&str; 4] = ["broker", "economics", "trust", "upstream"];

pub fn run() -> Result<()> {
    setup::ensure_wasm_target()?;
    crate::tidy::run()?;
    exec(cargo().args(["fmt", "--all", "--", "--check"]))?;
    exec(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let simd = &FLAVOURS[0];
    exec(
        cargo()
            .args(["clippy", "--package", "minepass", "--all-targets", "--target", "wasm32-unknown-unknown"])
            .args(["--target-dir", simd.target_dir, "--", "-D", "warnings"])
            .env("RUSTFLAGS", simd.rustflags),
    )?;
    exec(
        cargo()
            .args(["clippy", "--package", "minepass", "--target", "wasm32-unknown-unknown"])
            .args(["--features", CLIENT.cargo_features, "--target-dir", CLIENT.target_dir])
            .args(["--", "-D", "warnings"]),
    )?;
    // The upstream tests run a real Stratum pool from npm (stratum-pool-sha256) under node.
    setup::ensure_npm_packages()?;
    // The kits tests run the publisher kits under node (jose, from npm above), python3 and php.
    setup::ensure_kit_runtimes()?;
    // The fleet tests run brokers on a throwaway PostgreSQL cluster behind HAProxy.
    setup::ensure_postgresql()?;
    setup::ensure_haproxy()?;
    let mut tally = Tally::default();
    tally.exec(cargo().args(["test", "--workspace"]))?;
    tally.exec(
        cargo()
            .args(["test", "--package", "minepass-broker"])
            .args(POSTGRES_SUITES.iter().flat_map(|suite| ["--test", suite]))
            .env("MINEPASS_TEST_BACKEND", "postgres"),
    )?;

    crate::build::run()?;
    setup::ensure_wasm_bindgen()?;
    setup::ensure_wasm_pack()?;
    setup::ensure_engines()?;
    for flavour in &FLAVOURS {
        let kernel = if flavour.name == "simd" { "simd128" } else { "scalar" };
        tally.exec(
            Command::new("wasm-pack")
                .args(["test", "--headless", "--chrome"])
                .env("CHROMEDRIVER", setup::CHROMEDRIVER)
                .env("CARGO_TARGET_DIR", flavour.target_dir)
                .env("RUSTFLAGS", flavour.rustflags)
                .env("MINEPASS_EXPECT_KERNEL", kernel),
        )?;
    }
    // The same tests in Gecko, for the simd build (the plain kernel is the same code).
    let simd = &FLAVOURS[0];
    tally.exec(
        Command::new("wasm-pack")
            .args(["test", "--headless", "--firefox"])
            .env("GECKODRIVER", setup::geckodriver()?)
            .env("CARGO_TARGET_DIR", simd.target_dir)
            .env("RUSTFLAGS", simd.rustflags)
            .env("MINEPASS_EXPECT_KERNEL", "simd128"),
    )?;
    exec(cargo().args(["build", "--package", "minepass-broker", "--bin", "minepass-broker"]))?;
    tally.exec(
        Command::new("node")
            .arg("tests/e2e/sdk.mjs")
            .env("MINEPASS_BROKER", "target/debug/minepass-broker")
            .env("MINEPASS_CHROMIUM", setup::CHROMIUM),
    )?;
    tally.exec(
        Command::new("node")
            .arg("tests/e2e/engines.mjs")
            .env("MINEPASS_BROKER", "target/debug/minepass-broker")
            .env("MINEPASS_CHROMIUM", setup::CHROMIUM)
            .env("GECKODRIVER", setup::geckodriver()?),
    )?;
    let host = ["--manifest-path", "hosts/desktop/Cargo.toml"];
    exec(cargo().arg("fmt").args(host).args(["--", "--check"]))?;
    exec(cargo().arg("clippy").args(host).args(["--target-dir", HOST_TARGET, "--", "-D", "warnings"]))?;
    exec(cargo().arg("build").args(host).args(["--target-dir", HOST_TARGET]))?;
    tally.exec(
        Command::new("node")
            .arg("tests/e2e/host.mjs")
            .env("MINEPASS_BROKER", "target/debug/minepass-broker")
            .env("MINEPASS_HOST", format!("{HOST_TARGET}/debug/minepass-host")),
    )?;
    // The plain closing line CI reads, over every runner above.
    println!("cargo xtask test: {} passed, {} failed", tally.passed, tally.failed);
    Ok(())
}
