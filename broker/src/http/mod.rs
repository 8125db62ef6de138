//! The transport layer: the one axum router (`/ws`, `/healthz`, `/metrics`, the SDK and demo files,
//! and the JSON APIs of `api`, `economics` and `rewards`, whose operator routes are nested behind
//! the admin check of `auth`) and the WebSocket loop that feeds frames to a [`Session`]. Handlers
//! stay thin; their errors are `error::ApiError`, mapped to codes once.

mod api;
mod auth;
mod client;
mod economics;
mod error;
mod rewards;

pub use client::{ClientAddress, client_address};

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::Layer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

use crate::metrics;
use minepass::protocol::{ErrorCode, ServerMessage};

use crate::session::{Broker, CLOSE_GOING_AWAY, CLOSE_TOO_MANY_CONNECTIONS, Replies, Session};

/// Where the static files are.
#[derive(Debug, Clone)]
pub struct StaticDirs {
    pub www: PathBuf,
    pub pkg: PathBuf,
}

/// The whole HTTP surface, for `serve` and for tests.
pub fn app(broker: Arc<Broker>, dirs: &StaticDirs) -> Router {
    // Every operator route lives in this router, and the router's layer checks the admin token
    // before any of its handlers runs: an admin route cannot be added without the check.
    let admin = Router::new()
        .merge(api::admin_routes())
        .merge(economics::admin_routes())
        .merge(rewards::admin_routes())
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&broker), auth::require_admin));
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(render_metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(api::routes())
        .merge(economics::routes())
        .merge(rewards::routes())
        .nest("/api/v1/admin", admin)
        // The SDK loader as built (bundled and minified into pkg/); its readable source is www/sdk/.
        .route_service("/minepass.js", static_file(&dirs.pkg.join("minepass.js")))
        // The worker as built (minified); its source is www/worker.js. Served at the root so its
        // `./pkg/…` imports resolve the same either way.
        .route_service("/worker.js", static_file(&dirs.pkg.join("worker.js")))
        .route_service("/demo/strict.html", strict_csp(ServeFile::new(dirs.www.join("demo/index.html"))))
        .nest_service("/pkg", static_files(&dirs.pkg))
        .fallback_service(static_files(&dirs.www))
        .with_state(broker)
}

/// The SDK's files, readable cross-origin: a publisher's page on another origin imports the client
/// module and its wasm from the broker, which needs CORS.
fn static_files(dir: &std::path::Path) -> tower_http::cors::Cors<ServeDir> {
    public_cors().layer(ServeDir::new(dir))
}

/// Reads from any origin: the SDK's files, and the sealed ciphertext a page on another origin fetches.
fn public_cors() -> CorsLayer {
    CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::HEAD])
}

/// The strictest policy the SDK supports: same-origin scripts, workers and connections, plus wasm
/// compilation. `/demo/strict.html` is the demo page served under it (tested end to end).
pub const STRICT_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; \
    connect-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'";

fn strict_csp<S>(service: S) -> SetResponseHeader<S, HeaderValue> {
    SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(STRICT_CSP))
        .layer(service)
}

fn static_file(path: &std::path::Path) -> tower_http::cors::Cors<ServeFile> {
    public_cors().layer(ServeFile::new(path))
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(broker): State<Arc<Broker>>,
    ClientAddress(client): ClientAddress,
) -> Response {
    let slot = broker.admit(client);
    // Frames beyond the protocol's limit are answered with `frame_too_large`; this cap (16×) only
    // bounds memory. Small buffers keep many idle sockets cheap.
    ws.max_message_size(16 * minepass::protocol::MAX_FRAME_BYTES)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let tasks = broker.tasks.clone();
            // Tracked, so shutdown waits for the socket to close cleanly.
            tasks.track_future(async move {
                match slot {
                    Some(_slot) => serve_socket(socket, broker).await,
                    None => refuse(socket).await,
                }
            })
        })
        .into_response()
}

/// An address over its connection limit gets one error and a close code, and holds no slot.
async fn refuse(mut socket: WebSocket) {
    let error = ServerMessage::Error {
        code: ErrorCode::TooManyConnections,
        message: "too many connections from this address".into(),
        fatal: true,
    };
    let json = serde_json::to_string(&error).expect("server messages always serialise");
    let _ = socket.send(Message::Text(json.into())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame { code: CLOSE_TOO_MANY_CONNECTIONS, reason: "".into() })))
        .await;
}

async fn serve_socket(mut socket: WebSocket, broker: Arc<Broker>) {
    metrics::connection_opened();
    let stopping = broker.stopping.clone();
    let mut session = Session::new(broker);
    // `None` once the source is gone (shutdown): nothing more will change.
    let mut work_changes = Some(session.work_changes());
    loop {
        let replies = tokio::select! {
            // A frame in hand is finished first (its ack follows its commit); then the broker goes.
            () = stopping.cancelled() => {
                let close = CloseFrame { code: CLOSE_GOING_AWAY, reason: "broker shutting down".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                break;
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => session.on_binary(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            // New upstream work is pushed to the session at once (a clean job makes the old stale).
            changed = next_change(&mut work_changes) => {
                if changed.is_err() {
                    work_changes = None;
                    continue;
                }
                session.on_work_changed()
            }
        };
        if send_replies(&mut socket, &replies).await.is_err() {
            break;
        }
        if let Some(code) = replies.close {
            let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: "".into() }))).await;
            break;
        }
    }
    session.finish().await;
    metrics::connection_closed();
}

async fn next_change(
    changes: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match changes {
        Some(changes) => changes.changed().await,
        None => std::future::pending().await,
    }
}

async fn send_replies(socket: &mut WebSocket, replies: &Replies) -> Result<(), axum::Error> {
    for reply in &replies.messages {
        let json = serde_json::to_string(reply).expect("server messages always serialise");
        socket.send(Message::Text(json.into())).await?;
    }
    Ok(())
}

async fn render_metrics(State(broker): State<Arc<Broker>>) -> String {
    let mut text = metrics::render();
    if let Some(upstream) = broker.jobs.upstream() {
        text.push_str(&upstream.render_metrics());
    }
    text
}

async fn jwks(State(broker): State<Arc<Broker>>) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(broker.tokens.jwks())).into_response()
}
