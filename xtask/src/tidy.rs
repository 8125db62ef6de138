//! `cargo xtask tidy`: repository hygiene that rustc and clippy do not check. Every Rust file opens
//! with a `//!` module doc saying what it is for.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

const RUST_DIRS: &[&str] =
    &["src", "tests", "examples", "xtask/src", "broker/src", "broker/tests", "hosts/desktop/src"];

pub fn run() -> Result<()> {
    let mut files = Vec::new();
    for dir in RUST_DIRS {
        collect_rust_files(Path::new(dir), &mut files)?;
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    if !missing.is_empty() {
        bail!("these files do not open with a `//!` module doc:\n  {}", missing.join("\n  "));
    }
    eprintln!("tidy: {} Rust files checked", files.len());
    Ok(())
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rust_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}
