//! The memory store's write pause while a million expired keys wait to be reclaimed, next to
//! what one full sweep of such a map costs (what the store did every 4096 writes before its
//! expiry became incremental). Figures go into BENCHMARKS.md.
//!
//! `cargo run --release -p stateful-route --example memory_expiry_pause`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stateful_route::keys::KeySpace;
use stateful_route::store::MemoryBackend;
use stateful_route::{LinkTtl, Store};

const KEYS: usize = 1_000_000;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = Arc::new(MemoryBackend::new(KeySpace::new("sf")));
        let store = Store::from_shared(m.clone());
        for i in 0..KEYS {
            store
                .set_link("default", &format!("t{i}"), "room", 0, LinkTtl::Seconds(1))
                .await
                .unwrap();
        }
        // Past their expiry (1 s), bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        let last = format!("t{}", KEYS - 1);
        while store.get_link("default", &last, "room").await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "links did not expire");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut times = Vec::new();
        for i in 0..20_000 {
            let t = Instant::now();
            store
                .set_link("default", &format!("p{i}"), "room", 0, LinkTtl::Persistent)
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let pct = |p: usize| times[(times.len() * p / 1000).min(times.len() - 1)];
        println!(
            "incremental expiry, {KEYS} expired keys waiting: write median {:?}, p99.9 {:?}, worst {:?} ({} keys left after 20 000 writes)",
            pct(500),
            pct(999),
            times[times.len() - 1],
            m.sizes().0
        );
    });
    // Baseline in the same run: one full pass over a map of the same size and shape, which the
    // store used to make under its lock every 4096 writes.
    let mut map: HashMap<String, (String, Option<u64>)> = (0..KEYS)
        .map(|i| {
            (
                format!("sf:{{default:lk:t{i}}}room"),
                ("0".to_string(), Some(1)),
            )
        })
        .collect();
    let t = Instant::now();
    map.retain(|_, (_, exp)| exp.is_none_or(|e| e > 2));
    println!(
        "full sweep of {KEYS} keys (the old pause, every 4096 writes): {:?}",
        t.elapsed()
    );
}
