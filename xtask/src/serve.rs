//! A small static file server for the benchmark and the demo: `www/` at `/`, `pkg/` at `/pkg/`, on
//! 127.0.0.1 only. The benchmark page posts its results to `/bench/result`, which arrive on a channel.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread;

use anyhow::{Result, anyhow};
use tiny_http::{Header, Method, Request, Response, Server};

pub struct StaticServer {
    pub port: u16,
    /// Bodies posted to `/bench/result`.
    pub results: Receiver<String>,
    server: Arc<Server>,
}

impl StaticServer {
    pub fn start(port: u16) -> Result<StaticServer> {
        let server = Arc::new(Server::http(("127.0.0.1", port)).map_err(|e| anyhow!("cannot listen: {e}"))?);
        let port = server.server_addr().to_ip().map(|a| a.port()).ok_or_else(|| anyhow!("no TCP address"))?;
        let (sender, results) = channel();
        let worker = Arc::clone(&server);
        thread::spawn(move || {
            for mut request in worker.incoming_requests() {
                if *request.method() == Method::Post && request.url() == "/bench/result" {
                    let mut body = String::new();
                    let ok = request.as_reader().read_to_string(&mut body).is_ok();
                    let _ = request.respond(Response::empty(if ok { 204 } else { 400 }));
                    if ok {
                        let _ = sender.send(body);
                    }
                } else {
                    serve_file(request);
                }
            }
        });
        Ok(StaticServer { port, results, server })
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn serve_file(request: Request) {
    let path = request.url().split(['?', '#']).next().unwrap_or("/").to_owned();
    let response = match resolve(&path).and_then(|file| std::fs::read(&file).ok().map(|bytes| (file, bytes)))
    {
        Some((file, bytes)) => Response::from_data(bytes)
            .with_header(header("Content-Type", content_type(&file)))
            .with_header(header("Cache-Control", "no-store")),
        None => Response::from_string("not found").with_status_code(404),
    };
    let _ = request.respond(response);
}

/// Maps a URL path to a file under `www/` or `pkg/`, refusing anything that climbs out of them.
fn resolve(url_path: &str) -> Option<PathBuf> {
    let relative = url_path.trim_start_matches('/');
    let (root, rest) = match relative.strip_prefix("pkg/") {
        Some(rest) => ("pkg", rest),
        None => ("www", if relative.is_empty() { "index.html" } else { relative }),
    };
    let rest = Path::new(rest);
    if !rest.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let file = Path::new(root).join(rest);
    file.is_file().then_some(file)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "webmanifest") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}
