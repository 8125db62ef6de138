//! The MinePass broker: hands out work over WebSocket, verifies every share, credits a durable ledger.
//!
//! Layers, with dependencies pointing one way (top to bottom):
//! - [`http`] (transport): axum router, WebSocket loop, static files;
//! - [`session`]: hello validation, per-connection state, replies;
//! - [`work`]: job sources (gate mode, the Stratum v1 upstream), vardiff, share verification;
//! - [`store`] (SQLite or PostgreSQL through sqlx, group commit) and [`books`] (partners, the
//!   double-entry accounts, settlement, payouts, `ledger check`).
//!
//! [`identity`] proves user ids (publisher proofs, anonymous secrets): pure functions the session
//! layer calls. [`vault`] holds the operator's key-encryption key: the ledger stores every secret sealed under it.
//!
//! [`tokens`] (unlock JWTs, JWKS) is used by the session layer to issue and by the transport to verify.
//!
//! [`metrics`] is a leaf every layer may bump.

pub mod books;
pub mod config;
pub mod estimate;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod session;
pub mod store;
pub mod tokens;
pub mod vault;
pub mod work;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves, then drains the broker (see
/// [`session::Broker::drain`]): nothing acknowledged and no pool answer received is lost.
pub async fn run(
    listener: TcpListener,
    broker: Arc<session::Broker>,
    dirs: &http::StaticDirs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = http::app(Arc::clone(&broker), dirs);
    broker.spawn_key_refresh();
    broker.spawn_share_upkeep();
    let stopping = broker.stopping.clone();
    // Replies are small frames sent back to back (accepted, progress, …): without TCP_NODELAY, Nagle's
    // algorithm holds the second one for the peer's delayed ACK (up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Upgraded sockets are not the HTTP server's to wait for: tell them now.
            stopping.cancel();
        })
        .await?;
    broker.drain().await;
    Ok(())
}
