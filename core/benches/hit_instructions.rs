//! Instruction counts of a cache hit, for `valgrind --tool=callgrind` (repeatable on a noisy
//! machine, unlike wall time). `tests/bench.sh` runs it with N and 2N iterations per mode and
//! divides the difference by N, which removes the setup cost.
//!
//! Usage: hit_instructions <bare|hit|hit_metrics_off|miss|store> <iterations>

use std::hint::black_box;

use stateful_route::{BaseConfig, ClientDriver, ServerDriver, ServerInfo, Store};

/// Polls a future that must be ready at once (the memory store never waits).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("must not wait"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` runs every bench target with `--bench`: do nothing then.
    if args.iter().any(|a| a == "--bench") || args.len() < 3 {
        return;
    }
    let n: usize = args[2].parse().expect("iterations");
    let store = Store::memory();
    let config = BaseConfig {
        cpu_factor: 0.0,
        metrics: args[1] != "hit_metrics_off",
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
        let client = ClientDriver::new(store, ServerInfo::new("default", "gw", 0), config).unwrap();
        client.init().unwrap();
        for i in 0..1000 {
            client
                .compute_linked_pod("", &format!("user-{i}"), "room")
                .await
                .unwrap();
        }
        (server, client)
    });
    let bare: moka::sync::Cache<String, u32> =
        moka::sync::Cache::builder().max_capacity(100_000).build();
    for i in 0..1000 {
        bare.insert(format!("room\0user-{i}"), 0);
    }
    match args[1].as_str() {
        "bare" => {
            for _ in 0..n {
                black_box(bare.get(black_box("room\0user-123")));
            }
        }
        "hit" | "hit_metrics_off" => {
            for _ in 0..n {
                black_box(
                    client
                        .compute_cached(black_box(""), black_box("user-123"), black_box("room"))
                        .unwrap(),
                );
            }
        }
        // Driver overhead of a new user on the memory store, next to the bare store operation.
        "miss" => {
            for i in 0..n {
                black_box(
                    ready(client.compute_linked_pod("", &format!("new-{i}"), "room")).unwrap(),
                );
            }
        }
        "store" => {
            let ttl = stateful_route::LinkTtl::Seconds(300);
            for i in 0..n {
                let uid = format!("new-{i}");
                black_box(
                    ready(
                        client
                            .store()
                            .set_link_if_absent("default", &uid, "room", 0, ttl),
                    )
                    .unwrap(),
                );
            }
        }
        m => panic!("unknown mode {m}"),
    }
    drop(server);
}
