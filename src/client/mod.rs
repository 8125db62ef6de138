//! The SDK's client logic, compiled into the wasm module the page loads after consent.
//!
//! - [`policy`]: whether to mine now, from the visitor's limits and the browser's facts.
//! - [`budget`]: the daily mining budget and its local-day accounting.
//! - [`backoff`]: reconnect delays with jitter.
//! - [`controller`]: the broker protocol as a pure state machine (frames in, commands out).
//! - [`scaling`]: how many workers the device really sustains, measured (not `hardwareConcurrency`).
//! - [`parts`]: which worker searches which part of the job, and which of their reports count.
//! - [`lease`]: the tab lock's `localStorage` lease where Web Locks are missing.
//! - `browser` (wasm32 with the `client` feature): performs the commands with web-sys: the WebSocket,
//!   the workers, storage, the tab lock, visibility and battery; one file per concern.
//!
//! Everything but `browser` is pure and tested natively and in headless Chromium.

// The JS-facing surface is documented in docs/SDK.md; here types are documented, and self-explanatory
// fields and constructors are not.
#![allow(missing_docs)]

pub mod backoff;
pub mod budget;
pub mod controller;
pub mod lease;
pub mod parts;
pub mod policy;
pub mod scaling;

#[cfg(all(target_arch = "wasm32", feature = "client"))]
mod browser;
#[cfg(all(target_arch = "wasm32", feature = "client"))]
pub use browser::Client;
