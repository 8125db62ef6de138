//! MinePass core: the SHA-256d nonce-search kernels and the 256-bit target and work math.
//!
//! This crate is compiled twice: natively, where the broker uses it to verify shares, and to
//! `wasm32-unknown-unknown`, where browser workers use it to search for them. Two wasm builds ship:
//! one with `+simd128` (the 4-lane kernel) and one without (the scalar kernel), and the SDK loads the one
//! the browser validates.
//!
//! - [`kernel`]: [`kernel::Job`] precomputes everything about a header that does not depend on the nonce,
//!   then scans nonce ranges in batches. Pure computation: no I/O, no allocation in the hot loop.
//! - [`target`]: [`target::Target`] (a 256-bit threshold), compact `nbits`, difficulty and the expected
//!   work of a share as an integer.
//! - [`baseline`]: sha256d with the `sha2` crate, the independent reference and the benchmark baseline.
//! - [`protocol`]: the broker's WebSocket messages, shared by the SDK and the broker so they cannot drift.
//! - [`json`]: the small JSON writer the SDK's outgoing messages and events are written with.
//! - [`client`]: the SDK's client logic (policy, budget, backoff, protocol state machine) and, on wasm32,
//!   its browser layer.
//! - `wasm` (wasm32 only): the wasm-bindgen API used by the web workers (not in the `client` build).
#![deny(missing_docs)]

pub mod baseline;
pub mod client;
pub mod json;
pub mod kernel;
pub mod protocol;
pub mod target;

#[cfg(all(target_arch = "wasm32", not(feature = "client")))]
mod wasm;

// Every wasm module the SDK ships carries its allocator: Rust's default, dlmalloc, is about 8 KB of
// code; talc is a fraction of that (and faster). The modules are single-threaded (no atomics).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(test)]
mod testutil;

// Every test in this crate runs both natively (`cargo test`) and in headless Chromium
// (`wasm-pack test --headless --chrome`).
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
