//! `cargo xtask bench [--json] [--ms N] [--engines chromium,firefox,webkit]`: the kernel benchmark. A
//! benchmark, not a test: it measures and reports, and checks the issue's targets only to print them.
//!
//! Browsers: each engine (default: all three) opens `www/bench.html`, which times each kernel in one
//! worker (warmed up, then run for `--ms`, default 3000) and the simd kernel in 1..hardwareConcurrency
//! workers, and posts the numbers back. Chromium runs headless, Firefox ESR headless in a fresh
//! profile, WebKitGTK's MiniBrowser on an Xvfb display started for it; each browser runs in its own
//! process group, killed with its children when its result arrives or on timeout. An engine whose
//! binary is missing is reported as skipped, with why. Native: `examples/native_bench.rs` built with
//! default flags and with `-C target-cpu=native`.
//!
//! The JSON keeps Chromium's numbers at the top level (as before there were other engines) and has
//! every engine under `engines`, keyed `chromium`, `firefox`, `webkit`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use crate::serve::StaticServer;
use crate::setup::{self, cargo, exec};

const FIREFOX: &str = "/usr/bin/firefox-esr";
const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
const XVFB: &str = "/usr/bin/Xvfb";
/// How long the page waits before its first run: a browser just started with a fresh profile is busy
/// for a few seconds (Firefox's first simd run measured 20% low without this on 2 cores).
const SETTLE_MS: u64 = 3000;

/// The browser engines the page runs in, in the order of the table's columns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Chromium,
    Firefox,
    Webkit,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::Webkit];

    /// The key in `--engines` and in the JSON's `engines` object.
    fn key(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
            Engine::Webkit => "webkit",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Engine::Chromium => "Chromium",
            Engine::Firefox => "Firefox ESR",
            Engine::Webkit => "WebKitGTK",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Engine::Chromium => setup::CHROMIUM,
            Engine::Firefox => FIREFOX,
            Engine::Webkit => MINIBROWSER,
        }
    }

    /// `--engines chromium,firefox,webkit`: known names, each once, in the order given.
    fn parse_list(list: &str) -> Result<Vec<Engine>> {
        let mut engines = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let engine = Engine::ALL
                .into_iter()
                .find(|e| e.key() == name)
                .ok_or_else(|| anyhow!("unknown engine `{name}` (known: chromium, firefox, webkit)"))?;
            if !engines.contains(&engine) {
                engines.push(engine);
            }
        }
        if engines.is_empty() {
            bail!("--engines names no engine (known: chromium, firefox, webkit)");
        }
        Ok(engines)
    }
}

/// What became of one engine's run.
enum Outcome {
    /// The page's posted result.
    Ran(Value),
    /// Not run, and why (its binary is missing).
    Skipped(String),
    /// Run, but no result, and why.
    Failed(String),
}

pub fn run(args: &[String]) -> Result<()> {
    let json_only = crate::has_flag(args, "--json");
    let ms: u64 = crate::flag_value(args, "--ms").map(str::parse).transpose()?.unwrap_or(3000);
    let engines = match crate::flag_value(args, "--engines") {
        Some(list) => Engine::parse_list(list)?,
        None => Engine::ALL.to_vec(),
    };
    if json_only {
        with_stdout_on_stderr(crate::build::run)?;
    } else {
        crate::build::run()?;
    }
    // A failed install is not fatal: the engines it was for are reported as skipped, with its error.
    let installed = if engines.iter().all(|&e| e == Engine::Chromium) {
        setup::ensure_chromium()
    } else {
        setup::ensure_engines()
    };
    let setup_error = installed.err().map(|e| format!("{e:#}"));
    if let Some(error) = &setup_error {
        eprintln!("warning: browser setup failed: {error}");
    }

    let seconds = format!("{}", ms as f64 / 1000.0);
    let native = native_bench("target", "", &seconds)?;
    let native_max = native_bench("target/native-cpu", "-C target-cpu=native", &seconds)?;
    let native_mhs = number(&native, "sha2_mhs")?;

    let mut report = json!({
        "native_mhs": round(native_mhs),
        "native_max_mhs": round(number(&native_max, "sha2_mhs")?),
        "native_scalar_kernel_mhs": round(number(&native, "scalar_kernel_mhs")?),
        "sha_ni": native["sha_ni"],
        "cpu": cpu_model(),
        "ms": ms,
    });
    let mut by_engine = Map::new();
    for &engine in &engines {
        let outcome = match missing(engine, setup_error.as_deref()) {
            Some(reason) => Outcome::Skipped(reason),
            None => match browser_bench(engine, ms) {
                Ok(result) => Outcome::Ran(result),
                Err(error) => Outcome::Failed(format!("{error:#}")),
            },
        };
        let not_run = |status: &str, reason: String| json!({"label": engine.label(), "status": status, "reason": reason});
        let summary = match outcome {
            Outcome::Ran(result) => summarise(engine, &result, native_mhs)
                .unwrap_or_else(|error| not_run("failed", format!("{error:#}"))),
            Outcome::Skipped(reason) => not_run("skipped", reason),
            Outcome::Failed(reason) => not_run("failed", reason),
        };
        if let Some(reason) = summary["reason"].as_str() {
            eprintln!("{}: {}: {reason}", engine.label(), summary["status"].as_str().unwrap_or(""));
        }
        by_engine.insert(engine.key().to_owned(), summary);
    }
    // The keys of the Chromium-only report, for whatever reads them.
    if let Some(chromium) = by_engine.get("chromium").filter(|c| c["status"] == "ok") {
        for (key, from) in [
            ("simd_mhs", "simd_mhs"),
            ("scalar_mhs", "scalar_mhs"),
            ("sha2_wasm_mhs", "sha2_wasm_mhs"),
            ("workers", "workers"),
            ("simd_vs_native", "simd_vs_native"),
            ("simd_vs_sha2_wasm", "simd_vs_sha2_wasm"),
            ("browser", "user_agent"),
        ] {
            report[key] = chromium[from].clone();
        }
    }
    let failed: Vec<&str> =
        engines.iter().filter(|e| by_engine[e.key()]["status"] == "failed").map(|e| e.label()).collect();
    report["engines"] = Value::Object(by_engine);

    if !json_only {
        print_table(&report, &engines);
    }
    println!("{report}");
    if !failed.is_empty() {
        bail!("the benchmark failed in {}", failed.join(", "));
    }
    Ok(())
}

fn number(v: &Value, key: &str) -> Result<f64> {
    v[key].as_f64().ok_or_else(|| anyhow!("no {key} in {v}"))
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Why `engine` cannot run here, if it cannot.
fn missing(engine: Engine, setup_error: Option<&str>) -> Option<String> {
    let setup = setup_error.map(|e| format!(" (setup failed: {e})")).unwrap_or_default();
    if !Path::new(engine.binary()).exists() {
        return Some(format!("{} is not installed{setup}", engine.binary()));
    }
    if engine == Engine::Webkit && !Path::new(XVFB).exists() {
        return Some(format!("{XVFB} (needed for MiniBrowser's display) is not installed{setup}"));
    }
    None
}

/// One engine's entry in `engines`, from the page's result.
fn summarise(engine: Engine, browser: &Value, native_mhs: f64) -> Result<Value> {
    let simd = number(browser, "simd_mhs")?;
    let scalar = number(browser, "scalar_mhs")?;
    let sha2_wasm = number(browser, "sha2_wasm_mhs")?;
    let workers = browser["workers"].as_array().cloned().unwrap_or_default();
    let one = workers.first().and_then(|w| w["mhs"].as_f64()).unwrap_or(0.0);
    let scaling: Vec<Value> = workers
        .iter()
        .map(|w| {
            let n = w["n"].as_f64().unwrap_or(1.0);
            let mhs = w["mhs"].as_f64().unwrap_or(0.0);
            json!({"n": w["n"], "mhs": round(mhs), "efficiency": round(mhs / (n * one))})
        })
        .collect();
    Ok(json!({
        "label": engine.label(),
        "status": "ok",
        "simd_mhs": round(simd),
        "scalar_mhs": round(scalar),
        "simd_vs_scalar": round(simd / scalar),
        "sha2_wasm_mhs": round(sha2_wasm),
        "simd_vs_sha2_wasm": round(simd / sha2_wasm),
        "simd_vs_native": round(simd / native_mhs),
        "workers": scaling,
        "hardware_concurrency": browser["hardwareConcurrency"],
        "user_agent": browser["userAgent"],
    }))
}

fn print_table(r: &Value, engines: &[Engine]) {
    let columns: Vec<&Value> = engines.iter().map(|e| &r["engines"][e.key()]).collect();
    let ok = |c: &Value| c["status"] == "ok";
    let row = |name: &str, cell: &dyn Fn(&Value) -> String| {
        let mut line = format!("{name:<34}");
        for c in &columns {
            let text = if ok(c) { cell(c) } else { "-".to_owned() };
            line.push_str(&format!(" {text:>14}"));
        }
        println!("{line}");
    };
    let mhs = |key: &'static str| move |c: &Value| format!("{:.2}", c[key].as_f64().unwrap_or(f64::NAN));
    let target = |key: &'static str, min: f64| {
        move |c: &Value| {
            let x = c[key].as_f64().unwrap_or(f64::NAN);
            format!("{x:.2} {}", if x >= min { "met" } else { "NOT met" })
        }
    };

    println!();
    let mut header = format!("{:<34}", "wasm sha256d, MH/s");
    for e in engines {
        header.push_str(&format!(" {:>14}", e.label()));
    }
    println!("{header}");
    row("simd128 kernel, 1 worker", &mhs("simd_mhs"));
    row("scalar kernel, plain build", &mhs("scalar_mhs"));
    row("simd / scalar", &mhs("simd_vs_scalar"));
    row("sha2 crate, plain build", &mhs("sha2_wasm_mhs"));
    row("simd / sha2 wasm (target >= 3.50)", &target("simd_vs_sha2_wasm", 3.5));
    row("simd / native (target >= 0.70)", &target("simd_vs_native", 0.7));
    let most = columns.iter().filter_map(|c| c["workers"].as_array()).map(Vec::len).max().unwrap_or(0);
    for n in 1..=most {
        let name = format!("scaling: simd128, {n} worker{}", if n == 1 { "" } else { "s" });
        row(&name, &|c: &Value| {
            let Some(w) = c["workers"].as_array().and_then(|w| w.get(n - 1)) else { return "-".to_owned() };
            let (mhs, efficiency) = (w["mhs"].as_f64(), w["efficiency"].as_f64());
            format!("{:.2} ({:.0}%)", mhs.unwrap_or(f64::NAN), 100.0 * efficiency.unwrap_or(f64::NAN))
        });
    }
    row("navigator.hardwareConcurrency", &|c: &Value| c["hardware_concurrency"].to_string());
    row("scaling: N workers >= 0.9·N × 1", &|c: &Value| {
        let met = c["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|w| w["efficiency"].as_f64().unwrap_or(0.0) >= 0.9);
        (if met { "met" } else { "NOT met" }).to_owned()
    });
    println!();
    for (e, c) in engines.iter().zip(&columns) {
        let detail = if ok(c) { &c["user_agent"] } else { &c["reason"] };
        let status = if ok(c) { String::new() } else { format!("{}: ", c["status"].as_str().unwrap_or("")) };
        println!("{:<12} {status}{}", e.label(), detail.as_str().unwrap_or(""));
    }

    let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
    println!();
    println!("{:<44} {:>8}", "sha256d nonce search natively, one thread", "MH/s");
    println!("{:<44} {:>8.2}", "native sha2 crate, default flags", f("native_mhs"));
    println!("{:<44} {:>8.2}", "native sha2 crate, target-cpu=native", f("native_max_mhs"));
    println!("{:<44} {:>8.2}", "native MinePass scalar kernel", f("native_scalar_kernel_mhs"));
    println!("CPU: {}", r["cpu"].as_str().unwrap_or(""));
    println!();
}

/// Runs `f` with stdout (of this process and the commands it starts) sent to stderr, so `--json` leaves
/// only the report on stdout (the build prints its size table there).
fn with_stdout_on_stderr<T>(f: impl FnOnce() -> T) -> T {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: dup(2) and dup2(2) on this process's own standard descriptors; no memory is shared.
    let saved = unsafe { libc::dup(1) };
    if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        return f();
    }
    let result = f();
    let _ = std::io::stdout().flush();
    // SAFETY: as above; `saved` is the descriptor dup returned.
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
    result
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

/// Serves the bench page, opens it in `engine` and waits for the posted results. The browser, its
/// children and its profile are gone when this returns, whatever happened.
fn browser_bench(engine: Engine, ms: u64) -> Result<Value> {
    let server = StaticServer::start(0)?;
    let profile = Profile::create(engine)?;
    let url = format!("http://127.0.0.1:{}/bench.html?report&ms={ms}&settle={SETTLE_MS}", server.port);
    let log = std::fs::File::create(profile.0.join("bench-browser.log"))?;
    let mut command = match engine {
        Engine::Chromium => {
            let mut command = Command::new(setup::CHROMIUM);
            command.args(setup::chromium_flags(&profile.0));
            command
        }
        Engine::Firefox => {
            std::fs::write(profile.0.join("user.js"), FIREFOX_PREFS)?;
            let mut command = Command::new(FIREFOX);
            command.args(["-headless", "-no-remote", "-profile"]).arg(&profile.0);
            command
        }
        Engine::Webkit => {
            let mut command = Command::new(MINIBROWSER);
            command
                .arg("--private")
                .env("XDG_CONFIG_HOME", profile.0.join("config"))
                .env("XDG_CACHE_HOME", profile.0.join("cache"))
                .env("XDG_DATA_HOME", profile.0.join("data"));
            command
        }
    };
    // Started before the browser, dropped after it (locals drop in reverse order).
    let display = if engine == Engine::Webkit { Some(Xvfb::start()?) } else { None };
    if let Some(display) = &display {
        command.env("DISPLAY", format!(":{}", display.number));
    }
    command.arg(&url).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    eprintln!("opening {url} in {}", engine.label());
    let browser =
        Group::spawn(&mut command, &profile.0).with_context(|| format!("starting {}", engine.binary()))?;
    let timeout = Duration::from_millis(ms * 20 + 120_000);
    let received = server.results.recv_timeout(timeout);
    drop(browser);
    let body = received.map_err(|_| {
        anyhow!(
            "the benchmark page did not report within {} s; browser log: {}",
            timeout.as_secs(),
            profile.log_tail()
        )
    })?;
    let result: Value = serde_json::from_str(&body)?;
    if let Some(error) = result["error"].as_str() {
        bail!("benchmark page failed: {error}");
    }
    Ok(result)
}

/// Firefox prefs for a fresh profile: no first-run, welcome or default-browser pages, no update or
/// telemetry traffic competing for the two cores.
const FIREFOX_PREFS: &str = r#"user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("startup.homepage_welcome_url", "");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.policy.firstRunURL", "");
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("extensions.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
"#;

/// A browser's temporary profile (or data) directory, named after the engine and this process, removed
/// when dropped.
struct Profile(PathBuf);

impl Profile {
    fn create(engine: Engine) -> Result<Profile> {
        let dir =
            std::env::temp_dir().join(format!("minepass-bench-{}-{}", engine.key(), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Profile(dir))
    }

    /// The last lines the browser wrote, for an error message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.0.join("bench-browser.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
        if tail.is_empty() { "(empty)".to_owned() } else { tail }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process started as the leader of its own process group. Dropping it kills the group, then any
/// process that left the group but still names `marker` (the profile directory) in its command line
/// or environment, so a browser's helper processes go with it.
struct Group {
    child: Child,
    marker: Option<PathBuf>,
}

impl Group {
    /// Spawns `command`, which must have been given `process_group(0)`.
    fn spawn(command: &mut Command, marker: &Path) -> Result<Group> {
        Ok(Group { child: command.spawn()?, marker: Some(marker.to_owned()) })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.child.id();
        // The leader is reaped only after the last signal, so its pid cannot name another group yet.
        signal_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while !exited(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pid, libc::SIGKILL);
        let _ = self.child.wait();
        if let Some(marker) = &self.marker {
            kill_marked(marker);
        }
    }
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the process group `pgid` leads; it touches no memory
    // of ours.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
}

/// Whether `pid` has exited (a zombie not yet reaped, or gone).
fn exited(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
}

/// Kills every process whose command line or environment contains `marker`.
fn kill_marked(marker: &Path) {
    let needle = marker.as_os_str().as_encoded_bytes();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for pid in entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
        if pid == own {
            continue;
        }
        let names_it = ["cmdline", "environ"].iter().any(|file| {
            std::fs::read(format!("/proc/{pid}/{file}"))
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        });
        if names_it {
            // SAFETY: kill(2) touches no memory of ours; the pid names a process started for this run's
            // profile.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// An Xvfb server on a display number that was free, killed when dropped.
struct Xvfb {
    number: u32,
    _server: Group,
}

impl Xvfb {
    fn start() -> Result<Xvfb> {
        for number in 99..199 {
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
            if socket.exists() || Path::new(&format!("/tmp/.X{number}-lock")).exists() {
                continue;
            }
            let mut server = Group {
                child: Command::new(XVFB)
                    .args([&format!(":{number}"), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .context("starting Xvfb")?,
                marker: None,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            // Ready once its socket exists; gone if another server took the number first.
            while server.child.try_wait()?.is_none() && !socket.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if server.child.try_wait()?.is_none() && socket.exists() {
                return Ok(Xvfb { number, _server: server });
            }
        }
        bail!("Xvfb did not start on any display from :99 to :198")
    }
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

#[cfg(test)]
mod tests {
    use super::Engine;

    #[test]
    fn parses_the_engine_list() {
        assert_eq!(Engine::parse_list("chromium,firefox,webkit").unwrap(), Engine::ALL);
        assert_eq!(
            Engine::parse_list("webkit, chromium,webkit").unwrap(),
            [Engine::Webkit, Engine::Chromium]
        );
        assert!(Engine::parse_list("safari").is_err());
        assert!(Engine::parse_list(",").is_err());
    }
}
