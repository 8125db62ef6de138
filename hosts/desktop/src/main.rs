//! `minepass-host URL [--mode gate|mine] [--charging-only]`: a desktop app host for MinePass. A tao window shows `URL` in
//! the system webview (wry: WebKitGTK on Linux, WKWebView on macOS, WebView2 on Windows; the same crates
//! drive WKWebView and Android's WebView in mobile apps) and speaks the host protocol of docs/HOST.md
//! with the SDK on the page, as a mobile app does.
//!
//! The app's own UI is its terminal, so people and tests drive it alike:
//! - every message from the page is printed on stdout as one JSON line `{"t": ms, "page": {…}}`, and
//!   every message the host sends as `{"t": ms, "host": {…}}` (`t`: milliseconds since start, one clock);
//! - each line on stdin is a host message (a JSON object; `minepass: 1` is added) or a word:
//!   `grant`, `deny`, `revoke`, `plug`, `unplug`, `hot`, `cool`, `metered`, `unmetered`, `background`,
//!   `foreground`, `status`, `quit`.
//!
//! Where the system reports it (`/sys/class/power_supply` on Linux), the host sends the real power
//! state when it changes. It answers the SDK's `ready` with `hello`: proof of work only (`gate`) unless
//! started with `--mode mine`, the default app stores require (docs/HOST.md); with `--charging-only`
//! the SDK computes only while the host reports charging.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tao::event::{Event, WindowEvent};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tao::window::WindowBuilder;
use wry::WebViewBuilder;

/// What other threads ask of the event loop, which owns the webview.
enum Ask {
    /// Deliver a host message to the page.
    Send(Value),
    Quit,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("minepass-host: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut mode = "gate".to_owned();
    let mut charging_only = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mode" => {
                mode = args.next().filter(|m| m == "gate" || m == "mine").ok_or("--mode gate|mine")?
            }
            "--charging-only" => charging_only = true,
            "--help" | "-h" => {
                println!("usage: minepass-host URL [--mode gate|mine] [--charging-only]");
                return Ok(());
            }
            _ if url.is_none() => url = Some(arg),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    let url = url.ok_or("usage: minepass-host URL [--mode gate|mine] [--charging-only]")?;

    let started = Instant::now();
    let event_loop = EventLoopBuilder::<Ask>::with_user_event().build();
    let window = WindowBuilder::new().with_title("MinePass host").build(&event_loop)?;

    let proxy = event_loop.create_proxy();
    let builder = WebViewBuilder::new()
        .with_url(&url)
        // Every run starts as a new install: no consent or identity kept from an earlier run.
        .with_incognito(true)
        .with_ipc_handler(move |request| {
            let hello = json!({"type": "hello", "mode": mode, "app": "minepass-host", "requireCharging": charging_only});
            on_page_message(started, &proxy, &hello, request.body())
        });
    #[cfg(not(any(target_os = "windows", target_os = "macos", target_os = "ios", target_os = "android")))]
    let webview = {
        use tao::platform::unix::WindowExtUnix;
        use wry::WebViewBuilderExtUnix;
        builder.build_gtk(window.default_vbox().ok_or("no GTK box in the window")?)?
    };
    #[cfg(any(target_os = "windows", target_os = "macos", target_os = "ios", target_os = "android"))]
    let webview = builder.build(&window)?;

    let proxy = event_loop.create_proxy();
    std::thread::spawn(move || read_commands(&proxy));
    let proxy = event_loop.create_proxy();
    std::thread::spawn(move || watch_power(&proxy));

    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            Event::UserEvent(Ask::Send(message)) => deliver(&webview, started, message),
            // The mobile lifecycle (tao reports it on Android and iOS): the SDK stops and resumes.
            Event::WindowEvent { event: WindowEvent::Suspended, .. } => {
                deliver(&webview, started, json!({"type": "lifecycle", "state": "background"}))
            }
            Event::WindowEvent { event: WindowEvent::Resumed, .. } => {
                deliver(&webview, started, json!({"type": "lifecycle", "state": "foreground"}))
            }
            Event::UserEvent(Ask::Quit) | Event::WindowEvent { event: WindowEvent::CloseRequested, .. } => {
                *control_flow = ControlFlow::Exit
            }
            _ => {}
        }
    });
}

/// Runs `MinePass.host.receive(message)` in the page.
fn deliver(webview: &wry::WebView, started: Instant, mut message: Value) {
    message["minepass"] = json!(1);
    report(started, "host", &message);
    // A JSON string is a JavaScript string literal: the page parses it (`receive` checks it).
    let text = serde_json::to_string(&message.to_string()).expect("a string serialises");
    let script = format!("window.MinePass && window.MinePass.host.receive({text})");
    if let Err(error) = webview.evaluate_script(&script) {
        eprintln!("minepass-host: cannot reach the page: {error}");
    }
}

/// One message from the SDK: printed, and answered where the app has something to say.
fn on_page_message(started: Instant, proxy: &EventLoopProxy<Ask>, hello: &Value, body: &str) {
    let Ok(message) = serde_json::from_str::<Value>(body) else {
        eprintln!("minepass-host: the page sent something that is not JSON: {body}");
        return;
    };
    report(started, "page", &message);
    if message["type"] == "ready" {
        let _ = proxy.send_event(Ask::Send(hello.clone()));
        if let Some(power) = read_power() {
            let _ = proxy.send_event(Ask::Send(power));
        }
    }
}

fn report(started: Instant, from: &str, message: &Value) {
    let line = json!({"t": started.elapsed().as_millis() as u64, from: message});
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Lines on stdin: host messages, or words for the common ones. End of input quits.
fn read_commands(proxy: &EventLoopProxy<Ask>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            break;
        }
        let message = match line {
            "grant" => json!({"type": "consent", "granted": true}),
            "deny" | "revoke" => json!({"type": "consent", "granted": false}),
            "plug" => json!({"type": "power", "charging": true}),
            "unplug" => json!({"type": "power", "charging": false}),
            "hot" => json!({"type": "power", "thermal": "serious"}),
            "cool" => json!({"type": "power", "thermal": "nominal"}),
            "metered" => json!({"type": "network", "online": true, "metered": true}),
            "unmetered" => json!({"type": "network", "online": true, "metered": false}),
            "background" | "foreground" => json!({"type": "lifecycle", "state": line}),
            "status" => json!({"type": "status"}),
            json => match serde_json::from_str::<Value>(json) {
                Ok(value) if value.is_object() => value,
                _ => {
                    eprintln!("minepass-host: not a command or a JSON object: {line}");
                    continue;
                }
            },
        };
        if proxy.send_event(Ask::Send(message)).is_err() {
            return;
        }
    }
    let _ = proxy.send_event(Ask::Quit);
}

/// Sends the system's power state whenever it changes.
fn watch_power(proxy: &EventLoopProxy<Ask>) {
    let mut last = read_power();
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let now = read_power();
        if let Some(power) = now.clone().filter(|p| Some(p) != last.as_ref())
            && proxy.send_event(Ask::Send(power)).is_err()
        {
            return;
        }
        last = now;
    }
}

/// Power from Linux's `/sys/class/power_supply`: charging when a mains supply is online, the level
/// of the first battery. `None` where the system has neither (a desktop without a battery says
/// nothing, and the SDK keeps its own view).
fn read_power() -> Option<Value> {
    let entries = std::fs::read_dir("/sys/class/power_supply").ok()?;
    let read = |path: &std::path::Path, name: &str| std::fs::read_to_string(path.join(name)).ok();
    let (mut mains, mut level) = (None, None);
    for entry in entries.flatten() {
        let path = entry.path();
        match read(&path, "type").as_deref().map(str::trim) {
            Some("Mains") => mains = Some(mains.unwrap_or(false) || read(&path, "online")?.trim() == "1"),
            Some("Battery") if level.is_none() => {
                level = read(&path, "capacity").and_then(|c| c.trim().parse::<f64>().ok()).map(|c| c / 100.0);
            }
            _ => {}
        }
    }
    if mains.is_none() && level.is_none() {
        return None;
    }
    // A battery without a mains supply listed: on battery.
    Some(json!({"type": "power", "charging": mains.unwrap_or(false), "level": level}))
}
