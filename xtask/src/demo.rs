//! `cargo xtask demo [--port N]`: builds the wasm and serves the demo page, which runs the miner in
//! workers and shows the live hash rate. (The broker issue replaces this server with the broker.)

use anyhow::Result;

use crate::serve::StaticServer;

pub fn run(args: &[String]) -> Result<()> {
    let port: u16 = crate::flag_value(args, "--port")
        .map(str::parse)
        .transpose()?
        .unwrap_or(8080);
    crate::build::run()?;
    let server = StaticServer::start(port)?;
    println!();
    println!("MinePass demo: http://127.0.0.1:{}/", server.port);
    println!(
        "Benchmark page: http://127.0.0.1:{}/bench.html",
        server.port
    );
    println!("Press Ctrl-C to stop.");
    // The server thread does the work; results posted by the bench page are printed.
    for result in server.results.iter() {
        println!("benchmark result: {result}");
    }
    Ok(())
}
