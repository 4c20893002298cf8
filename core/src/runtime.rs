//! The one tokio runtime of the process, shared by the core and every binding.
//!
//! Created lazily on first use, so a program that never touches the store starts no threads.
//! Background work (state publishing, snapshot refresh, the Redis connection's driver task)
//! lives here, never on a caller's runtime, so it survives whatever runtime the caller has.
//! It must never be shut down by a caller: bindings get a handle, not the runtime.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Number of worker threads: `STATEFUL_ROUTE_WORKER_THREADS`, or 2.
fn worker_threads() -> usize {
    std::env::var("STATEFUL_ROUTE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

/// The shared runtime, created on first call.
pub fn get() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(worker_threads())
            .thread_name("stateful-route")
            .enable_all()
            .build()
            .expect("the stateful-route runtime cannot start (no threads?)")
    })
}

/// A handle to the shared runtime.
pub fn handle() -> &'static Handle {
    get().handle()
}

/// Runs `fut` to completion from a thread that is not a runtime worker (a binding's blocking
/// call, a C caller, a plain `main`). Inside a runtime use `.await` instead.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    get().block_on(fut)
}
