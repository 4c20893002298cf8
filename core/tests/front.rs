//! The contract a binding-side front cache relies on (README, "Front caches"): an answer of
//! `compute_front` stays valid only while its stripe's epoch is unchanged and its lifetime has
//! not passed, and every change that can make it wrong moves the epoch — a link moved or
//! removed elsewhere, a local write, a pod's stop, `close`. Changes that cannot make it wrong
//! (a pod re-publishing, another user's link) leave it alone, so a front cache stays useful.

use std::sync::atomic::Ordering;
use std::time::Duration;

use stateful_route::testkit::{client, eventually, fast_config, pod};
use stateful_route::{BaseConfig, ClientDriver, FrontHit, Store, FRONT_STRIPES};

const SVC: &str = "room";

/// Whether `hit` is still valid by its epoch.
fn current(gw: &ClientDriver, hit: &FrontHit) -> bool {
    gw.front_epochs()[hit.stripe as usize].load(Ordering::Acquire) == hit.epoch
}

/// A front answer for `uid` (placing the user first).
async fn front(gw: &ClientDriver, uid: &str) -> FrontHit {
    let pod = gw.compute_linked_pod("", uid, SVC).await.unwrap();
    let hit = gw
        .compute_front("", uid, SVC)
        .unwrap()
        .expect("a hit after the placement");
    assert_eq!(hit.pod, pod);
    assert!(current(gw, &hit));
    hit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_answer_is_bounded_by_the_cache_and_the_pods_liveness() {
    let store = Store::memory();
    let cfg = fast_config();
    let _p = pod(&store, 0, 0, &cfg).await;
    let gw = client(&store, &cfg);
    assert_eq!(gw.front_epochs().len(), FRONT_STRIPES);
    let hit = front(&gw, "u1").await;
    // The pod's deadline is at most stale_after (5 s) away, less the 500 ms slack; the
    // temporary link's cache entry is shorter still if its TTL says so.
    assert!(hit.valid_for <= Duration::from_millis(4500), "{hit:?}");
    assert!(hit.valid_for > Duration::ZERO, "{hit:?}");
    // A miss and bad input: what compute_cached says.
    assert_eq!(gw.compute_front("", "nobody", SVC).unwrap(), None);
    assert!(gw.compute_front("", "", SVC).is_err());
    assert!(gw.compute_front("elsewhere", "u1", SVC).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_moved_elsewhere_moves_the_epoch_and_others_do_not() {
    let store = Store::memory();
    let cfg = fast_config();
    let p0 = pod(&store, 0, 0, &cfg).await;
    let _p1 = pod(&store, 1, 0, &cfg).await;
    let gw = client(&store, &cfg);
    let hit = front(&gw, "u1").await;
    // Other users' traffic on other stripes, and pods re-publishing, leave it valid.
    // A user on another stripe (two keys share one with odds 1/1024: pick one that does not).
    let mut other = None;
    for i in 0..50 {
        let uid = format!("o{i}");
        gw.compute_linked_pod("", &uid, SVC).await.unwrap();
        let o = gw.compute_front("", &uid, SVC).unwrap().unwrap();
        if o.stripe != hit.stripe {
            other = Some((uid, o.pod));
            break;
        }
    }
    let (other, its_pod) = other.expect("50 users on one stripe");
    let hit = front(&gw, "u1").await;
    gw.set_cache("", &other, SVC, its_pod).await.unwrap(); // a write on its stripe only
    assert!(current(&gw, &hit), "a write of another stripe voided it");
    gw.refresh_service(SVC).await.unwrap();
    assert!(
        current(&gw, &hit),
        "a re-read with nothing changed invalidated it"
    );
    // Another pod moves the user: the epoch moves as the event lands.
    let to = 1 - hit.pod;
    p0.set_linked_pod("", "u1", SVC, to).await.unwrap();
    eventually(Duration::from_secs(5), "the move invalidates", || async {
        !current(&gw, &hit)
    })
    .await;
    let again = gw.compute_linked_pod("", "u1", SVC).await.unwrap();
    assert_eq!(again, to);
    let fresh = gw.compute_front("", "u1", SVC).unwrap().unwrap();
    assert_eq!(fresh.pod, to);
    assert!(current(&gw, &fresh));
    // A removal too.
    p0.remove_linked_pod("", "u1", SVC, 0).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the removal invalidates",
        || async { !current(&gw, &fresh) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_writes_a_pods_stop_and_close_move_the_epoch() {
    let store = Store::memory();
    let cfg = fast_config();
    let p0 = pod(&store, 0, 0, &cfg).await;
    let p1 = pod(&store, 1, 0, &cfg).await;
    let gw = client(&store, &cfg);
    // A local write of the link.
    let hit = front(&gw, "u1").await;
    gw.set_cache("", "u1", SVC, 1 - hit.pod).await.unwrap();
    assert!(!current(&gw, &hit), "set_cache left the front answer valid");
    // The pod stops: once the gateway's snapshot says so, every front answer is void.
    let hit = front(&gw, "u2").await;
    let serving = if hit.pod == 0 { &p0 } else { &p1 };
    serving.stop().await.unwrap();
    gw.refresh_service(SVC).await.unwrap();
    assert!(
        !current(&gw, &hit),
        "a stopped pod's front answer stayed valid"
    );
    // Close.
    let hit = front(&gw, "u3").await;
    gw.close();
    assert!(!current(&gw, &hit), "close left the front answer valid");
    assert!(gw.compute_front("", "u3", SVC).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_hits_are_counted_once() {
    let store = Store::memory();
    let cfg = fast_config();
    let _p = pod(&store, 0, 0, &cfg).await;
    let gw = client(&store, &cfg);
    front(&gw, "u1").await; // one store answer, one hit (compute_front)
    gw.add_front_hits(SVC, 41);
    gw.add_front_hits("not a service!", 5); // ignored
    let m = gw.metrics();
    let s = m.service(SVC).unwrap();
    assert_eq!(s.hits, 42, "{s:?}");
    let off = client(
        &store,
        &BaseConfig {
            metrics: false,
            ..cfg
        },
    );
    off.add_front_hits(SVC, 3);
    assert!(off.metrics().service(SVC).is_none_or(|s| s.hits == 0));
}
