//! `stateful_route._native`: the pyo3 module behind the `stateful_route` Python package.
//!
//! This crate only converts values, maps errors and bridges the runtime; every routing decision
//! is the core's (`stateful_route`). One file per core concept: `store.rs`, `client.rs`,
//! `server.rs`, `config.rs`, `error.rs`, `runtime.rs`, `log.rs`, `extend.rs` (Python callables
//! as placement policy and load calculator), `metrics.rs` (the metrics snapshot, its samples
//! and families), `explain.rs` (`explain_placement`'s answer), `args.rs` (Python argument
//! checks) and, with the `bench` feature only, `bench.rs` (hooks for `python/bench.py`). Each
//! of `Store`, `ClientDriver` and `ServerDriver` is one class whose instances are asyncio or
//! blocking by the class attribute `_blocking`: the Python package (`python/stateful_route`)
//! re-exports them from `stateful_route` and subclasses them with `_blocking = True` in
//! `stateful_route.blocking`.

use pyo3::prelude::*;

mod args;
#[cfg(feature = "bench")]
mod bench;
mod client;
mod config;
mod error;
mod explain;
mod extend;
mod log;
mod metrics;
mod runtime;
mod server;
mod store;

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
    m.add_class::<config::BaseConfig>()?;
    m.add_class::<config::ServerInfo>()?;
    m.add_class::<config::Link>()?;
    m.add_class::<config::TrySetOutcome>()?;
    m.add_class::<config::PodState>()?;
    m.add_class::<config::RoutingStateChange>()?;
    m.add_class::<config::LinkChange>()?;
    m.add_class::<runtime::Ready>()?;
    m.add_class::<extend::Candidate>()?;
    m.add_class::<extend::PlacementRequest>()?;
    m.add_class::<extend::LoadInput>()?;
    m.add_class::<metrics::MetricsSnapshot>()?;
    m.add_class::<metrics::ServiceMetrics>()?;
    m.add_class::<metrics::PodMetrics>()?;
    m.add_class::<metrics::StoreCallMetrics>()?;
    m.add_class::<metrics::PropagationMetrics>()?;
    m.add_class::<metrics::Sample>()?;
    m.add_class::<explain::Explanation>()?;
    m.add_class::<explain::ExplainedLink>()?;
    m.add_class::<explain::ExplainedPod>()?;
    m.add_function(wrap_pyfunction!(metrics::metric_families, m)?)?;
    m.add_function(wrap_pyfunction!(log::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(_at_exit, m)?)?;
    #[cfg(feature = "bench")]
    bench::add(m)?;
    Ok(())
}
