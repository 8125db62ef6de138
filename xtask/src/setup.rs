//! Idempotent setup of the tools the other commands need, and the one helper that runs commands.
//!
//! Each `ensure_*` checks first and installs only what is missing, so running any xtask twice costs
//! nothing the second time. Where a step cannot be automated it fails with what to do by hand.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs a command with inherited stdio, echoing it first; fails on a non-zero exit.
pub fn exec(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(cmd));
    let status = cmd.status().with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", display(cmd));
    }
    Ok(())
}

/// Test counts summed over test runs.
#[derive(Default)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    /// Runs a test command like [`exec`], echoing its output, and adds up its `test result:` lines
    /// (the format of both `cargo test` and `wasm-bindgen-test-runner`).
    pub fn exec(&mut self, cmd: &mut Command) -> Result<()> {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        eprintln!("$ {}", display(cmd));
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", display(cmd)))?;
        // wasm-pack reports the browser runs on stderr, cargo on stdout: read both, echo each to its
        // own stream, and count the result lines of either.
        let stderr = child.stderr.take().expect("piped stderr");
        let echo_stderr = std::thread::spawn(move || {
            let mut counts = Tally::default();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                counts.add_line(&line);
            }
            counts
        });
        for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
            let line = line?;
            println!("{line}");
            self.add_line(&line);
        }
        let from_stderr = echo_stderr.join().expect("stderr reader does not panic");
        self.passed += from_stderr.passed;
        self.failed += from_stderr.failed;
        let status = child.wait()?;
        if !status.success() {
            bail!("`{}` failed with {status}", display(cmd));
        }
        Ok(())
    }

    fn add_line(&mut self, line: &str) {
        if let Some(counts) = line.strip_prefix("test result: ") {
            self.passed += count_before(counts, " passed");
            self.failed += count_before(counts, " failed");
        }
    }
}

/// The number just before `label` in a line like `ok. 13 passed; 0 failed; ...`.
fn count_before(text: &str, label: &str) -> u64 {
    text.find(label)
        .and_then(|end| text[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// Runs a command and returns its stdout, or `None` if it cannot start or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn display(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn ensure_wasm_target() -> Result<()> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        exec(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
            .context("install the wasm32 target with `rustup target add wasm32-unknown-unknown`")?;
    }
    Ok(())
}

/// The wasm-bindgen version in Cargo.lock (pinned with `=` in Cargo.toml).
pub fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string("Cargo.lock").context("Cargo.lock is missing")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

/// wasm-bindgen CLI (and its test runner) at exactly the library's version.
pub fn ensure_wasm_bindgen() -> Result<()> {
    let version = locked_wasm_bindgen_version()?;
    let have = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(version.as_str()) {
        // No --locked: the registry mirror may lack the newest patch releases of the CLI's dependencies.
        exec(cargo().args(["install", "wasm-bindgen-cli", "--version", &version])).with_context(|| {
            format!("install it with `cargo install wasm-bindgen-cli --version {version}`")
        })?;
    }
    Ok(())
}

pub fn ensure_wasm_pack() -> Result<()> {
    if output("wasm-pack", &["--version"]).is_none() {
        exec(cargo().args(["install", "wasm-pack"])).context("install it with `cargo install wasm-pack`")?;
    }
    Ok(())
}

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's Chromium and ChromeDriver (tools that download their own browser cannot work offline).
pub fn ensure_chromium() -> Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    apt_install(&["chromium", "chromium-driver"])
}

/// The other two engines a visitor's browser or webview runs, with their WebDriver servers: Debian's
/// Firefox ESR with geckodriver (built by cargo: Mozilla's binaries are a download) and WebKitGTK's
/// MiniBrowser with WebKitWebDriver, under Xvfb (`tests/e2e/webdriver.mjs` starts both); and WebKitGTK's
/// development files, which the desktop app host (`hosts/desktop`, wry) links against.
pub fn ensure_engines() -> Result<()> {
    ensure_chromium()?;
    let packages: Vec<&str> = [
        ("/usr/bin/firefox-esr", "firefox-esr"),
        ("/usr/bin/WebKitWebDriver", "webkit2gtk-driver"),
        ("/usr/bin/Xvfb", "xvfb"),
        ("/usr/include/webkitgtk-4.1", "libwebkit2gtk-4.1-dev"),
    ]
    .into_iter()
    .filter(|(path, _)| !Path::new(path).exists())
    .map(|(_, package)| package)
    .collect();
    if !packages.is_empty() {
        apt_install(&packages)?;
    }
    if output(&geckodriver()?.to_string_lossy(), &["--version"]).is_none() {
        exec(cargo().args(["install", "geckodriver", "--locked", "--debug"]))
            .context("install it with `cargo install geckodriver`")?;
    }
    Ok(())
}

/// Where `cargo install` puts geckodriver.
pub fn geckodriver() -> Result<std::path::PathBuf> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => std::path::PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cargo"),
    };
    Ok(cargo_home.join("bin/geckodriver"))
}

/// The npm packages in `package.json` (wasm-opt from binaryen; browser automation), installed into
/// `node_modules/` when missing or when `package-lock.json` changed since the last install.
pub fn ensure_npm_packages() -> Result<()> {
    let installed = Path::new("node_modules/.package-lock.json");
    let stale = match (std::fs::metadata(installed), std::fs::metadata("package-lock.json")) {
        (Ok(have), Ok(want)) => have.modified()? < want.modified()?,
        _ => true,
    };
    if stale {
        if output("npm", &["--version"]).is_none() {
            bail!("npm is missing: install Node.js 18+ with npm (Debian: `apt-get install -y nodejs npm`)");
        }
        exec(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]))?;
    }
    Ok(())
}

/// The runtimes of the publisher kits (examples/kits) that `broker/tests/kits.rs` runs: Debian's
/// php-cli (sodium built in) and, for the Python kit, PyJWT and cryptography. Node's `jose` comes
/// from `package.json` with [`ensure_npm_packages`].
pub fn ensure_kit_runtimes() -> Result<()> {
    if output("php", &["--version"]).is_none() {
        apt_install(&["php-cli"])?;
    }
    if output("python3", &["-c", "import jwt, cryptography"]).is_none() {
        let requirements = "examples/kits/python/requirements.txt";
        exec(Command::new("python3").args(["-m", "pip", "install", "-q", "-r", requirements]))
            .with_context(|| format!("install them with `python3 -m pip install -r {requirements}`"))?;
    }
    Ok(())
}

/// PostgreSQL (Debian's `postgresql`, 15): the broker suites' second backend. The tests start and
/// stop their own throwaway clusters (`broker/tests/common/postgres.rs`); only the binaries and the
/// `postgres` system user the package creates are needed.
pub fn ensure_postgresql() -> Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.flatten().any(|v| v.path().join("bin/initdb").exists()))
        .unwrap_or(false);
    if installed { Ok(()) } else { apt_install(&["postgresql"]) }
}

/// HAProxy (Debian's `haproxy`, 2.6): the load balancer in front of the fleet tests' brokers, which
/// start and stop it themselves.
pub fn ensure_haproxy() -> Result<()> {
    if output("haproxy", &["-v"]).is_some() || Path::new("/usr/sbin/haproxy").exists() {
        Ok(())
    } else {
        apt_install(&["haproxy"])
    }
}

/// Binaryen's wasm-opt from npm ([`ensure_npm_packages`]): Debian's is too old for some passes.
pub const WASM_OPT: &str = "node_modules/.bin/wasm-opt";

fn apt_install(packages: &[&str]) -> Result<()> {
    let is_root = output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0");
    if !is_root {
        bail!("missing {packages:?}: run `sudo apt-get install -y {}`", packages.join(" "));
    }
    exec(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Chromium flags for headless runs on a machine with no network beyond loopback.
pub fn chromium_flags(profile_dir: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("--user-data-dir={}", profile_dir.display())])
    .collect()
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn reads_counts_from_cargo_and_wasm_bindgen_test_result_lines() {
        let cargo = "ok. 14 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.05s";
        assert_eq!(count_before(cargo, " passed"), 14);
        assert_eq!(count_before(cargo, " failed"), 0);
        let browser = "FAILED. 12 passed; 2 failed; 0 ignored; 0 filtered out; finished in 0.29s";
        assert_eq!(count_before(browser, " passed"), 12);
        assert_eq!(count_before(browser, " failed"), 2);
        assert_eq!(count_before("no counts here", " passed"), 0);
    }
}
