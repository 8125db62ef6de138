//! The transport layer: the axum router (`/ws`, `/healthz`, `/metrics`, the SDK and demo files) and
//! the WebSocket loop that feeds frames to a [`Session`]. Handlers stay thin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::services::ServeDir;

use crate::metrics;
use minepass::protocol::{ErrorCode, ServerMessage};

use crate::session::{Broker, CLOSE_TOO_MANY_CONNECTIONS, Session};
use crate::tokens::TokenError;

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
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/tokens/verify", post(verify_token))
        .nest_service("/pkg", ServeDir::new(&dirs.pkg))
        .fallback_service(ServeDir::new(&dirs.www))
        .with_state(broker)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(broker): State<Arc<Broker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let slot = broker.admit(peer.ip());
    // Frames beyond the protocol's limit are answered with `frame_too_large`; this cap (16×) only
    // bounds memory. Small buffers keep many idle sockets cheap.
    ws.max_message_size(16 * minepass::protocol::MAX_FRAME_BYTES)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            match slot {
                Some(_slot) => serve_socket(socket, broker).await,
                None => refuse(socket).await,
            }
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
        if let Some(code) = replies.close {
            let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: "".into() }))).await;
            break;
        }
    }
    metrics::connection_closed();
}

async fn jwks(State(broker): State<Arc<Broker>>) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(broker.tokens.jwks())).into_response()
}

/// Errors of the JSON API: the client learns a stable code, the log gets the detail.
enum ApiError {
    Unauthorized,
    BadRequest,
    Token(TokenError),
    Internal(anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            // A well-formed request about a bad token is answered 200 with ok: false (as siteverify APIs do).
            ApiError::Token(error) => (StatusCode::OK, error.code()),
            ApiError::Internal(error) => {
                tracing::error!("verify API failed: {error:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (status, Json(json!({ "ok": false, "error": code }))).into_response()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
}

/// `POST /api/v1/tokens/verify` with `Authorization: Bearer <site secret>` and `{"token": "…"}`:
/// checks the token for this site and consumes it, so a second verify of the same token fails.
async fn verify_token(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    body: Result<Json<VerifyRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let site = broker
        .ledger
        .site_by_secret(secret)
        .await
        .map_err(ApiError::Internal)?
        .ok_or(ApiError::Unauthorized)?;
    let Json(request) = body.map_err(|_| ApiError::BadRequest)?;
    let claims = broker.tokens.verify(&request.token, &site.key).map_err(ApiError::Token)?;
    if !broker.ledger.consume_token(&claims.jti, site.id).await.map_err(ApiError::Internal)? {
        return Err(ApiError::Token(TokenError::AlreadyUsed));
    }
    Ok(Json(json!({ "ok": true, "claims": claims })).into_response())
}
