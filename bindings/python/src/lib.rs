//! `stateful_route._native`: the pyo3 module behind the `stateful_route` Python package.
//!
//! This crate only converts values, maps errors and bridges the runtime; every routing decision
//! is the core's (`stateful_route`). One file per core concept: `store.rs`, `client.rs`,
//! `server.rs`, `config.rs`, `error.rs`, `runtime.rs`, `log.rs` (plus `args.rs`: Python
//! argument checks). The Python package (`python/stateful_route`) re-exports these classes:
//! the asyncio ones from `stateful_route`, the blocking ones from `stateful_route.blocking`.

use pyo3::prelude::*;

mod args;
mod client;
mod config;
mod error;
mod log;
mod runtime;
mod server;
mod store;

/// A bare call taking one `str` and returning an `int`: the benchmark's baseline.
#[pyfunction]
fn _bench_noop(s: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(args::text(s, "s")?.len())
}

/// Called by `atexit`: stops forwarding log events before the interpreter shuts down.
#[pyfunction]
fn _at_exit() {
    log::shutdown();
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    runtime::install_fork_hook();
    log::install_default();
    m.add_class::<store::Store>()?;
    m.add_class::<client::ClientDriver>()?;
    m.add_class::<server::ServerDriver>()?;
    m.add("BlockingStore", m.py().get_type::<store::BlockingStore>())?;
    m.add(
        "BlockingClientDriver",
        m.py().get_type::<client::BlockingClientDriver>(),
    )?;
    m.add(
        "BlockingServerDriver",
        m.py().get_type::<server::BlockingServerDriver>(),
    )?;
    m.add_class::<config::BaseConfig>()?;
    m.add_class::<config::ServerInfo>()?;
    m.add_class::<config::Link>()?;
    m.add_class::<config::TrySetOutcome>()?;
    m.add_class::<config::PodState>()?;
    m.add_class::<config::RoutingStateChange>()?;
    m.add_class::<runtime::Ready>()?;
    m.add_function(wrap_pyfunction!(log::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_noop, m)?)?;
    m.add_function(wrap_pyfunction!(_at_exit, m)?)?;
    Ok(())
}
