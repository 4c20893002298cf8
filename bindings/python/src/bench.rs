//! Benchmark hooks for `python/bench.py`, built only with the `bench` feature (the shipped
//! package has none of them): a bare call, and the core's own hit and new-user costs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use stateful_route::{Error, ErrorKind};

use crate::client::ClientDriver;
use crate::error::OrRaise;

/// A bare call taking one `str` and returning an `int`: the benchmark's baseline.
#[pyfunction]
fn _bench_noop(s: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(crate::args::text(s, "s")?.len())
}

/// The core's own cache-hit cost: `n` calls of `compute_cached` in Rust; ns per call.
#[pyfunction]
fn _bench_core_hits(
    py: Python<'_>,
    client: PyRef<'_, ClientDriver>,
    namespace: &str,
    uid: &str,
    service: &str,
    n: u64,
) -> f64 {
    let c = client.inner.clone();
    let (ns, uid, svc) = (namespace.to_owned(), uid.to_owned(), service.to_owned());
    py.detach(move || {
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(c.compute_cached(&ns, &uid, &svc).ok());
        }
        start.elapsed().as_nanos() as f64 / n.max(1) as f64
    })
}

/// The core's own new-user throughput: `n` new users (`{prefix}{i}`) computed by
/// `concurrency` tokio tasks on the library's runtime; elapsed seconds.
#[pyfunction]
fn _bench_core_new_users(
    py: Python<'_>,
    client: PyRef<'_, ClientDriver>,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> PyResult<f64> {
    let (c, prefix) = (client.inner.clone(), prefix.to_owned());
    let rt = crate::runtime::runtime()?;
    let run = async move {
        let next = Arc::new(AtomicUsize::new(0));
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let (c, next, prefix) = (c.clone(), next.clone(), prefix.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok::<(), Error>(());
                        }
                        c.compute_linked_pod("", &format!("{prefix}{i}"), "bench")
                            .await?;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))??;
        }
        Ok(start.elapsed().as_secs_f64())
    };
    py.detach(move || rt.block_on(run)).or_raise()
}

/// Adds the hooks to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_bench_noop, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_core_hits, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_core_new_users, m)?)
}
