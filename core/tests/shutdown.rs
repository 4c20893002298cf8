//! `ServerDriver::stop_on_signal`: SIGTERM (what Kubernetes sends) drains and stops the pod.
//! Its own test binary: it sends signals to its own process.

use std::time::{Duration, Instant};

use stateful_route::{BaseConfig, RoutingState, ServerDriver, ServerInfo, Store};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_pod() {
    // A listener of the test's own first: from now on SIGTERM does not end the process, so the
    // test can send it until the helper (which registers when first polled) has seen one.
    let _absorb = signal(SignalKind::terminate()).unwrap();
    let store = Store::memory();
    let config = BaseConfig {
        drain_seconds: 0.1,
        ..BaseConfig::default()
    };
    let server = std::sync::Arc::new(
        ServerDriver::new(store.clone(), ServerInfo::new("default", "room", 0), config).unwrap(),
    );
    server.start().await.unwrap();
    let waiting = {
        let s = server.clone();
        tokio::spawn(async move { s.stop_on_signal().await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiting.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the helper never stopped the pod"
        );
        // SAFETY: kill(2) on our own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting.await.unwrap().unwrap(), "SIGTERM");
    let states = store.pod_states("default", "room").await.unwrap();
    assert_eq!(states.pods[0].routing_state, RoutingState::Shutdown);
    assert_eq!(
        store
            .get_workload_state("default", "room")
            .await
            .unwrap()
            .as_deref(),
        Some("SHUTDOWN")
    );
    // Stopped for good: a start is CLOSED.
    assert_eq!(
        server.start().await.unwrap_err().kind(),
        stateful_route::ErrorKind::Closed
    );
}
