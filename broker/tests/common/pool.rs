//! A real third-party Stratum pool for the tests: the npm package `stratum-pool-sha256`, run by
//! `tests/pool/pool.cjs` on a loopback port (`npm ci` installs it; `cargo xtask test` does).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use minepass_broker::work::upstream::PoolConfig;
use serde_json::Value;

/// 2^-20: a pool share is worth about 2^12 hashes.
pub const POOL_DIFFICULTY: &str = "0.00000095367431640625";

/// A running pool process and the events it prints.
pub struct Pool {
    pub port: u16,
    pub child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    /// Events already read by `wait_for`, kept for counting.
    pub seen: Vec<Value>,
}

/// A port for a pool to listen on, below Linux's ephemeral range (32768 and up): the pool listens on
/// every address, and a port from that range can be taken between choosing and binding by the local
/// end of any outgoing connection (the tests make many). Never the same port twice in one process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = 20_000 + (rand::random::<u16>() % 12_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

impl Pool {
    /// A pool on a fresh port; if that port was taken between choosing and binding it (the pool
    /// exits at once), another one.
    pub fn start_fresh(extra: &[&str]) -> Pool {
        for _ in 0..3 {
            if let Some(pool) = Pool::try_start(free_port(), extra) {
                return pool;
            }
        }
        panic!("the pool did not start on three ports")
    }

    pub fn start(port: u16, extra: &[&str]) -> Pool {
        Pool::try_start(port, extra)
            .unwrap_or_else(|| panic!("the pool exited before it started on port {port}"))
    }

    /// Starts the pool on `port`; `None` if it exits before it reports that it started.
    pub fn try_start(port: u16, extra: &[&str]) -> Option<Pool> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        assert!(
            std::path::Path::new(root).join("node_modules/stratum-pool-sha256").exists(),
            "the test pool is not installed: run `npm ci` at the repository root (cargo xtask test does)"
        );
        let mut child = Command::new("node")
            .current_dir(root)
            .args(["tests/pool/pool.cjs", "--port", &port.to_string(), "--diff", POOL_DIFFICULTY])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("@pool ") {
                    let _ = tx.send(serde_json::from_str::<Value>(json).unwrap());
                }
            }
        });
        let mut pool = Pool { port, child, stdin, events, seen: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match pool.events.recv_timeout(left) {
                Ok(event) if event["event"] == "started" => return Some(pool),
                Ok(event) => pool.seen.push(event),
                // Its stdout closed: the process is gone (the port was taken, say).
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out waiting for the pool to start"),
            }
        }
    }

    /// Waits (up to 20 s) for an event matching `matches`, keeping every event read.
    pub fn wait_for(&mut self, matches: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some(event) = self.seen.iter().find(|e| matches(e)) {
            return event.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event =
                self.events.recv_timeout(left).unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            self.seen.push(event.clone());
            if matches(&event) {
                return event;
            }
        }
    }

    /// Every share event once there are at least `count` (waiting up to 20 s), and any that follow
    /// within 300 ms (so extra shares are seen too).
    pub fn shares(&mut self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let shares = |seen: &[Value]| seen.iter().filter(|e| e["event"] == "share").count();
        while shares(&self.seen) < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let event =
                self.events.recv_timeout(left).unwrap_or_else(|_| panic!("fewer than {count} shares"));
            self.seen.push(event);
        }
        while let Ok(event) = self.events.recv_timeout(Duration::from_millis(300)) {
            self.seen.push(event);
        }
        self.seen.iter().filter(|e| e["event"] == "share").cloned().collect()
    }

    pub fn new_block(&mut self) {
        writeln!(self.stdin, "newblock").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn url(&self, user: &str) -> PoolConfig {
        PoolConfig::parse(&format!("stratum+tcp://{user}:x@127.0.0.1:{}", self.port)).unwrap()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
