//! `cargo xtask build`: the two wasm builds of the `minepass` crate into `pkg/`.
//!
//! - `pkg/minepass_simd*`: the workers' kernel built with `+simd128`; `Scanner.scan` uses the 4-lane kernel.
//! - `pkg/minepass_plain*`: built without it, so LLVM cannot auto-vectorise the scalar kernel and the
//!   module validates in browsers without wasm SIMD.
//! - `pkg/minepass_client*`: the SDK's main-thread client (feature `client`), optimised for size: it
//!   runs the session, not the hashing.
//! - `pkg/minepass.js`: the SDK loader, the ES modules of `www/sdk/` bundled into one classic script and
//!   minified by esbuild (from npm, like wasm-opt); `pkg/worker.js`: `www/worker.js` minified.
//!
//! Each build has its own target directory so switching RUSTFLAGS never invalidates another.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::setup::{self, cargo, exec};

/// One wasm build flavour.
pub struct Flavour {
    pub name: &'static str,
    pub rustflags: &'static str,
    pub target_dir: &'static str,
    /// wasm-opt features beyond [`BASE_FEATURES`].
    pub extra_features: &'static [&'static str],
    /// Cargo features of the `minepass` crate.
    pub cargo_features: &'static str,
    /// rustc and wasm-opt optimisation level: speed for the kernels, size for the client.
    pub opt_level: &'static str,
}

/// The features rustc enables by default for wasm32, which wasm-opt must be told about. Reference
/// types are disabled in both builds: wasm-bindgen then needs no externref table (Debian's wasm-opt 108
/// mis-numbers a second table's export), and older WebViews without reference types still load.
const BASE_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
];

/// The workers' kernel builds; the SDK loads the one the browser validates.
pub const FLAVOURS: [Flavour; 2] = [
    Flavour {
        name: "simd",
        rustflags: "-C target-feature=+simd128",
        target_dir: "target/wasm-simd",
        extra_features: &["--enable-simd"],
        cargo_features: "",
        opt_level: "3",
    },
    Flavour {
        name: "plain",
        rustflags: "",
        target_dir: "target/wasm-plain",
        extra_features: &[],
        cargo_features: "",
        opt_level: "3",
    },
];

/// The main-thread client.
pub const CLIENT: Flavour = Flavour {
    name: "client",
    rustflags: "",
    target_dir: "target/wasm-client",
    extra_features: &[],
    cargo_features: "client",
    opt_level: "z",
};

/// Builds both flavours into `pkg/` and prints the size of every shipped file; returns their paths.
pub fn run() -> Result<Vec<PathBuf>> {
    setup::ensure_wasm_target()?;
    setup::ensure_wasm_bindgen()?;
    setup::ensure_npm_packages()?;
    std::fs::create_dir_all("pkg")?;
    let mut shipped = Vec::new();
    for flavour in FLAVOURS.iter().chain([&CLIENT]) {
        exec(
            cargo()
                .args([
                    "build",
                    "--release",
                    "--lib",
                    "--package",
                    "minepass",
                    "--target",
                    "wasm32-unknown-unknown",
                ])
                .args(["--target-dir", flavour.target_dir])
                .args(["--features", flavour.cargo_features])
                .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", flavour.opt_level)
                .env("RUSTFLAGS", flavour.rustflags),
        )?;
        let out_name = format!("minepass_{}", flavour.name);
        let wasm = Path::new(flavour.target_dir).join("wasm32-unknown-unknown/release/minepass.wasm");
        exec(std::process::Command::new("wasm-bindgen").arg(&wasm).args([
            "--target",
            "web",
            "--no-typescript",
            "--out-dir",
            "pkg",
            "--out-name",
            &out_name,
        ]))?;
        let bg = PathBuf::from(format!("pkg/{out_name}_bg.wasm"));
        exec(
            std::process::Command::new(setup::WASM_OPT)
                .arg(format!("-O{}", flavour.opt_level))
                // Size builds may assume what holds for Rust's wasm32 output: memory starts
                // zeroed and the first KiB (the null page) is never addressed. ~130 B gzip.
                .args(if flavour.opt_level == "z" {
                    &["--zero-filled-memory", "--low-memory-unused"][..]
                } else {
                    &[]
                })
                .args(["--strip-debug", "--strip-producers"])
                .args(BASE_FEATURES)
                .args(flavour.extra_features)
                .arg(&bg)
                .arg("-o")
                .arg(&bg),
        )?;
        // wasm-bindgen's glue is readable JavaScript: minified, it is a third of its gzip size smaller.
        let glue = format!("pkg/{out_name}.js");
        shipped.push(esbuild(&glue, &glue, &["--format=esm", "--allow-overwrite"])?);
        shipped.push(bg);
    }
    shipped.push(esbuild("www/sdk/index.js", "pkg/minepass.js", &["--bundle", "--format=iife"])?);
    shipped.push(esbuild("www/worker.js", "pkg/worker.js", &[])?);
    print_sizes(&shipped)?;
    Ok(shipped)
}

/// `out`: `entry` minified by esbuild for the browsers the SDK supports (ES2020: Safari 14, Firefox 78
/// ESR, Chromium 80). The broker serves the loader and the worker from `pkg/` at `/minepass.js` and
/// `/worker.js`; their readable sources stay in `www/`.
fn esbuild(entry: &str, out: &str, extra: &[&str]) -> Result<PathBuf> {
    exec(
        std::process::Command::new("node_modules/.bin/esbuild")
            .arg(entry)
            .args(extra)
            .args(["--minify", "--target=es2020", "--log-level=warning"])
            .arg(format!("--outfile={out}")),
    )?;
    Ok(PathBuf::from(out))
}

/// Raw and gzip (level 9) size of each file: size is a feature, reported on every build.
pub fn print_sizes(files: &[PathBuf]) -> Result<()> {
    println!("{:<32} {:>10} {:>10}", "file", "bytes", "gzip");
    for file in files {
        let (raw, gzip) = sizes(file)?;
        println!("{:<32} {raw:>10} {gzip:>10}", file.display());
    }
    Ok(())
}

pub fn sizes(file: &Path) -> Result<(usize, usize)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&bytes)?;
    Ok((bytes.len(), gz.finish()?.len()))
}
