//! `cargo xtask demo [--port N]`: builds the wasm and starts the broker (embedded SQLite ledger under
//! `./data`, a demo site created on first run), which serves the demo publisher at `/demo/`, the
//! kernel demo and the SDK files.

use anyhow::Result;

use crate::setup::{cargo, exec};

pub fn run(args: &[String]) -> Result<()> {
    let port: u16 = crate::flag_value(args, "--port").map(str::parse).transpose()?.unwrap_or(8080);
    crate::build::run()?;
    exec(cargo().args(["build", "--package", "minepass-broker"]))?;
    println!();
    println!("MinePass demo publisher: http://127.0.0.1:{port}/demo/");
    println!("  kernel demo: http://127.0.0.1:{port}/   benchmark page: http://127.0.0.1:{port}/bench.html");
    println!("Press Ctrl-C to stop.");
    exec(
        cargo()
            .args(["run", "--quiet", "--package", "minepass-broker", "--", "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}")),
    )
}
