//! Measuring points for `node/bench.js`, so that it compares the Node path with a bare napi
//! call and with the core's own figures in the same run. Not part of the routing API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use napi_derive::napi;

use crate::client::ClientDriver;
use crate::runtime::{promise, Promise};

/// A bare native call: one string in, one number out (its length in bytes). The baseline of
/// the cache-hit benchmark.
#[napi]
pub fn bench_bare_call(s: String) -> u32 {
    s.len() as u32
}

/// The core's own cache-hit cost: `n` calls of `compute_cached` looped in Rust; nanoseconds
/// per call.
#[napi]
pub fn bench_core_hits(
    client: &ClientDriver,
    namespace: String,
    uid: String,
    service: String,
    n: u32,
) -> f64 {
    let c = &client.inner;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(c.compute_cached(&namespace, &uid, &service).ok());
    }
    start.elapsed().as_nanos() as f64 / f64::from(n.max(1))
}

/// The core's own new-user throughput: `n` new users (`{prefix}{i}`, service `service`)
/// computed by `concurrency` tokio tasks on the core's runtime; resolves to elapsed seconds.
#[napi]
pub fn bench_core_new_users(
    client: &ClientDriver,
    prefix: String,
    service: String,
    n: u32,
    concurrency: u32,
) -> Promise<f64> {
    promise(&client.inner, move |c| async move {
        let next = Arc::new(AtomicUsize::new(0));
        let n = n as usize;
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                let (c, next, prefix, service) =
                    (c.clone(), next.clone(), prefix.clone(), service.clone());
                stateful_route::runtime::handle().spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok::<(), stateful_route::Error>(());
                        }
                        c.compute_linked_pod("", &format!("{prefix}{i}"), &service)
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
        Ok(start.elapsed().as_secs_f64())
    })
}
