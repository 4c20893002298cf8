//! Cache-hit cost of `compute_linked_pod`, next to a bare moka `get` of the same key.
//!
//! `cargo bench -p stateful-route --bench compute`. The ratio hit / bare get is the figure
//! that goes into BENCHMARKS.md (goal: at most 1.5×), and so is the ratio of a hit with
//! metrics on (the default) to one with `BaseConfig.metrics` off, measured in the same run
//! (goal: at most 1.1×).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use stateful_route::{BaseConfig, ClientDriver, ServerDriver, ServerInfo, Store};

/// Polls a future that must be ready at once (a cache hit never waits).
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit must not wait"),
    }
}

fn hits(c: &mut Criterion) {
    let store = Store::memory();
    let config = BaseConfig {
        cpu_factor: 0.0,
        ..BaseConfig::default()
    };
    let (server, client) = stateful_route::runtime::block_on(async {
        let server = ServerDriver::new(
            store.clone(),
            ServerInfo::new("default", "room", 0),
            config.clone(),
        )
        .unwrap();
        server.start().await.unwrap();
        let gateway = |metrics: bool| {
            let c = ClientDriver::new(
                store.clone(),
                ServerInfo::new("default", "gw", 0),
                BaseConfig {
                    metrics,
                    ..config.clone()
                },
            )
            .unwrap();
            c.init().unwrap();
            c
        };
        let (client, quiet) = (gateway(true), gateway(false));
        for c in [&client, &quiet] {
            for i in 0..10_000 {
                c.compute_linked_pod("", &format!("user-{i}"), "room")
                    .await
                    .unwrap();
            }
        }
        (server, (client, quiet))
    });
    let (client, quiet) = client;

    let bare: moka::sync::Cache<String, u32> =
        moka::sync::Cache::builder().max_capacity(100_000).build();
    for i in 0..10_000 {
        bare.insert(format!("room\0user-{i}"), 0);
    }

    let mut g = c.benchmark_group("cache_hit");
    g.bench_function("bare_moka_get", |b| {
        b.iter(|| black_box(bare.get(black_box("room\0user-123"))))
    });
    g.bench_function("compute_cached", |b| {
        b.iter(|| {
            black_box(
                client
                    .compute_cached(black_box(""), black_box("user-123"), black_box("room"))
                    .unwrap(),
            )
        })
    });
    g.bench_function("compute_cached_metrics_off", |b| {
        b.iter(|| {
            black_box(
                quiet
                    .compute_cached(black_box(""), black_box("user-123"), black_box("room"))
                    .unwrap(),
            )
        })
    });
    g.bench_function("compute_linked_pod", |b| {
        b.iter(|| {
            black_box(
                ready(client.compute_linked_pod(
                    black_box(""),
                    black_box("user-123"),
                    black_box("room"),
                ))
                .unwrap(),
            )
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, hits);
criterion_main!(benches);
