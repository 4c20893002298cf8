//! `stateful_route._native`: the pyo3 module behind the `stateful_route` Python package.
//!
//! This crate only converts values, maps errors and bridges the runtime; every routing decision
//! is the core's (`stateful_route`). One file per core concept: `store.rs`, `client.rs`,
//! `server.rs`, `config.rs`, `error.rs`, `runtime.rs`, `log.rs`, `extend.rs` (Python callables
//! as placement policy and load calculator; plus `args.rs`: Python argument checks). The Python package (`python/stateful_route`) re-exports these classes:
//! the asyncio ones from `stateful_route`, the blocking ones from `stateful_route.blocking`.

use pyo3::prelude::*;

mod args;
mod client;
mod config;
mod error;
mod extend;
mod log;
mod runtime;
mod server;
mod store;

/// A bare call taking one `str` and returning an `int`: the benchmark's baseline.
#[pyfunction]
fn _bench_noop(s: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(args::text(s, "s")?.len())
}

/// The core's own cache-hit cost, for the benchmark: `n` calls of `compute_cached` in Rust;
/// nanoseconds per call.
#[pyfunction]
fn _bench_core_hits(
    py: Python<'_>,
    client: &Bound<'_, PyAny>,
    namespace: &str,
    uid: &str,
    service: &str,
    n: u64,
) -> PyResult<f64> {
    let c = client::core_client(client)?;
    let (ns, uid, svc) = (namespace.to_owned(), uid.to_owned(), service.to_owned());
    py.detach(move || {
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(c.compute_cached(&ns, &uid, &svc).ok());
        }
        Ok(start.elapsed().as_nanos() as f64 / n.max(1) as f64)
    })
}

/// The core's own new-user throughput, for the benchmark: `n` new users (`{prefix}{i}`)
/// computed by `concurrency` tokio tasks on the library's runtime; elapsed seconds.
#[pyfunction]
fn _bench_core_new_users(
    py: Python<'_>,
    client: &Bound<'_, PyAny>,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> PyResult<f64> {
    let c = client::core_client(client)?;
    let rt = runtime::runtime()?;
    let prefix = prefix.to_owned();
    let r = py.detach(move || {
        rt.block_on(async move {
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let start = std::time::Instant::now();
            let tasks: Vec<_> = (0..concurrency.max(1))
                .map(|_| {
                    let (c, next, prefix) = (c.clone(), next.clone(), prefix.clone());
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= n {
                                return Ok::<(), stateful_route::Error>(());
                            }
                            c.compute_linked_pod("", &format!("{prefix}{i}"), "bench")
                                .await?;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.map_err(|e| {
                    stateful_route::Error::new(stateful_route::ErrorKind::Internal, e.to_string())
                })??;
            }
            Ok::<f64, stateful_route::Error>(start.elapsed().as_secs_f64())
        })
    });
    r.map_err(|e| error::to_pyerr(py, &e))
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
    m.add_class::<extend::Candidate>()?;
    m.add_class::<extend::PlacementRequest>()?;
    m.add_class::<extend::LoadInput>()?;
    m.add_function(wrap_pyfunction!(log::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_noop, m)?)?;
    m.add_function(wrap_pyfunction!(_at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_core_hits, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_core_new_users, m)?)?;
    Ok(())
}
