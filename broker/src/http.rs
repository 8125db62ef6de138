//! The transport layer: the axum router (`/ws`, `/healthz`, `/metrics`, the SDK and demo files) and
//! the WebSocket loop that feeds frames to a [`Session`]. Handlers stay thin.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

use crate::metrics;
use crate::session::{Broker, Session};

/// Where the static files are.
#[derive(Debug, Clone)]
pub struct StaticDirs {
    pub www: PathBuf,
    pub pkg: PathBuf,
}

/// The whole HTTP surface, for `serve` and for tests.
pub fn app(broker: Arc<Broker>, dirs: &StaticDirs) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(|| async { metrics::render() }))
        .nest_service("/pkg", ServeDir::new(&dirs.pkg))
        .fallback_service(ServeDir::new(&dirs.www))
        .with_state(broker)
}

async fn upgrade(ws: WebSocketUpgrade, State(broker): State<Arc<Broker>>) -> Response {
    // Frames beyond the protocol's limit are answered with `frame_too_large`; this cap (16×) only
    // bounds memory. Small buffers keep many idle sockets cheap.
    ws.max_message_size(16 * minepass::protocol::MAX_FRAME_BYTES)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_socket(socket, broker))
        .into_response()
}

async fn serve_socket(mut socket: WebSocket, broker: Arc<Broker>) {
    metrics::connection_opened();
    let mut session = Session::new(broker);
    while let Some(Ok(message)) = socket.recv().await {
        let replies = match message {
            Message::Text(text) => session.on_text(text.as_str()).await,
            Message::Binary(_) => session.on_binary(),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let mut failed = false;
        for reply in &replies.messages {
            let json = serde_json::to_string(reply).expect("server messages always serialise");
            if socket.send(Message::Text(json.into())).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
        if replies.close {
            // 1008: policy violation (RFC 6455); the error message said which.
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1008,
                    reason: "".into(),
                })))
                .await;
            break;
        }
    }
    metrics::connection_closed();
}
