//! `cargo xtask test`: every check and test, in the order that fails fastest. `.ci/run` runs exactly
//! this.
//!
//! 1. tidy, `cargo fmt --check`, clippy (native and wasm32+simd128) with `-D warnings`;
//! 2. native tests of the whole workspace;
//! 3. both wasm builds (they must link and bind);
//! 4. the crate's tests in headless Chromium with `wasm-pack test --headless --chrome`, once per wasm
//!    build, each asserting it really runs the kernel it was built for.

use std::process::Command;

use anyhow::Result;

use crate::build::FLAVOURS;
use crate::setup::{self, Tally, cargo, exec};

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
    let mut tally = Tally::default();
    tally.exec(cargo().args(["test", "--workspace"]))?;

    crate::build::run()?;
    setup::ensure_wasm_bindgen()?;
    setup::ensure_wasm_pack()?;
    setup::ensure_chromium()?;
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
    // The plain closing line CI reads, over every runner above.
    println!("cargo xtask test: {} passed, {} failed", tally.passed, tally.failed);
    Ok(())
}
