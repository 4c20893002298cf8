//! The Node.js binding of stateful-route (napi-rs). The npm package around it is `node/`.
//!
//! One file per core concept: `store.rs`, `client.rs`, `server.rs`, `config.rs`, `error.rs`,
//! `log.rs`, `metrics.rs` for the metrics snapshot and the placement explanation, `extend.rs`
//! for JS functions as placement policy and load calculator, and `runtime.rs` for the bridge
//! from Promises to the core's one tokio runtime;
//! `bench.rs` holds the measuring points of `node/bench.js`, built only with the `bench` feature.
//! This crate only converts values, maps errors and bridges the runtime; every routing
//! decision is the core's. It must never panic across the boundary or keep the Node process
//! alive (callbacks are weak threadsafe functions).

// napi-derive registers exports only outside `cfg(test)`, so a test build (`cargo clippy
// --all-targets`) sees them as unused; the addon's tests are node/test/.
#![cfg_attr(test, allow(dead_code))]

#[cfg(feature = "bench")]
mod bench;
mod client;
mod config;
mod error;
mod extend;
mod log;
mod metrics;
mod runtime;
mod server;
mod store;

use napi_derive::napi;

#[napi_derive::module_init]
fn init() {
    runtime::register();
    log::init_from_env();
}

/// The codes of `err.code`, one per kind of the core's errors.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    stateful_route::ErrorKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect()
}
