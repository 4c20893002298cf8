//! Bad input, by property tests (issue 5): identifier validation against an independent
//! oracle of SPEC §2, state-value parsing (never panics, round-trips), and random sequences
//! of link operations run against the memory store and a real Redis with identical results.
//!
//! CI runs a short bounded number of cases. For a longer local run:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release -p stateful-route --test properties
//! ```
//! (the model-based test runs a tenth of `PROPTEST_CASES`, each case on a fresh key prefix).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stateful_route::keys::KeySpace;
use stateful_route::pod_state::{format_value, parse};
use stateful_route::store::MemoryBackend;
use stateful_route::{ident, ErrorKind, LinkTtl, RoutingState, Store, StoreConfig};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A runner with a fixed seed (`PROPTEST_SEED` = any u64 to explore others), so that a run
/// is reproducible and CI always explores the same cases.
fn seeded(cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x05ee_d0f5_747e);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        config(cases),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &bytes,
        ),
    )
}

// ---- the oracle: SPEC §2 written independently of `ident` ----

fn oracle_namespace(s: &str) -> bool {
    s.is_empty() || (s.len() <= 63 && s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-')))
}

fn oracle_service(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.chars()
            .all(|c| matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-'))
}

fn oracle_uid(s: &str) -> bool {
    // Control characters are Unicode's Cc: U+0000..U+001F and U+007F..U+009F.
    (1..=512).contains(&s.len())
        && s.chars()
            .all(|c| c != '{' && c != '}' && !(c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c)))
}

/// Strings that hit the rules' edges: the allowed characters, the forbidden ones next to
/// them, multi-byte and control characters, at lengths around the limits.
fn tricky(max_len: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        4 => prop::sample::select(vec!['a', 'z', '0', '9', '-', 'A', 'Z', '.', '_']),
        2 => prop::sample::select(vec![
            ':', '{', '}', ' ', '/', '*', '\n', '\r', '\0', '\t', '\u{7f}', '\u{80}', '\u{85}',
            '\u{9f}', '\u{a0}', 'é', '用', '\u{2028}', '\u{feff}', '😀',
        ]),
        1 => any::<char>(),
    ];
    let long = prop::collection::vec(chars.clone(), max_len.saturating_sub(4)..max_len + 4)
        .prop_map(|v| v.into_iter().collect::<String>());
    let short = prop::collection::vec(chars, 0..12).prop_map(|v| v.into_iter().collect());
    prop_oneof![3 => short, 1 => long, 1 => any::<String>()]
}

#[test]
fn identifiers_are_accepted_exactly_when_spec_allows() {
    let mut runner = seeded(cases(2000));
    runner
        .run(&(tricky(63), tricky(253), tricky(512)), |(ns, svc, uid)| {
            prop_assert_eq!(ident::check_namespace(&ns).is_ok(), oracle_namespace(&ns));
            prop_assert_eq!(
                ident::check_namespace_label("namespace", &ns).is_ok(),
                !ns.is_empty() && oracle_namespace(&ns)
            );
            prop_assert_eq!(
                ident::check_service("service", &svc).is_ok(),
                oracle_service(&svc)
            );
            let ok = ident::check_uid(&uid).is_ok();
            prop_assert_eq!(ok, oracle_uid(&uid), "uid {:?}", uid);
            if let Err(e) = ident::check_uid(&uid) {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert!(e.message().contains("uid"));
            }
            if ok && oracle_service(&svc) && oracle_namespace(&ns) && !ns.is_empty() {
                // An accepted identifier cannot leave its hash tag.
                let key = KeySpace::new("sf").link(&ns, &uid, &svc);
                prop_assert_eq!(key.matches('{').count(), 1);
                prop_assert_eq!(key.matches('}').count(), 1);
                let head = format!("sf:{{{ns}:lk:");
                prop_assert!(key.starts_with(&head));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn raw_bytes_numbers_and_ttls() {
    let mut runner = seeded(cases(2000));
    runner
        .run(
            &(
                prop::collection::vec(any::<u8>(), 0..600),
                any::<i64>(),
                any::<i64>(),
            ),
            |(bytes, n, ttl)| {
                let want = std::str::from_utf8(&bytes).is_ok_and(oracle_uid);
                prop_assert_eq!(ident::uid_from_bytes(&bytes).is_ok(), want);
                prop_assert_eq!(
                    ident::pod_index("pod", n).is_ok(),
                    (0..=i32::MAX as i64).contains(&n)
                );
                prop_assert_eq!(
                    LinkTtl::from_secs(ttl).is_ok(),
                    ttl == -1 || (1..=i32::MAX as i64).contains(&ttl)
                );
                Ok(())
            },
        )
        .unwrap();
}

/// Through the store: a call with any bad identifier is `INVALID_ARGUMENT` and writes nothing.
#[test]
fn bad_identifiers_never_reach_the_store() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = Arc::new(MemoryBackend::new(KeySpace::new("p")));
    let store = Store::from_shared(backend.clone());
    let mut runner = seeded(cases(500));
    runner
        .run(&(tricky(63), tricky(253), tricky(512)), |(ns, svc, uid)| {
            let valid =
                !ns.is_empty() && oracle_namespace(&ns) && oracle_service(&svc) && oracle_uid(&uid);
            let before = backend.keys().len();
            let r = rt.block_on(store.set_link(&ns, &uid, &svc, 1, LinkTtl::Persistent));
            match r {
                Ok(_) => prop_assert!(valid),
                Err(e) => {
                    prop_assert!(!valid, "{}", e);
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                    prop_assert_eq!(backend.keys().len(), before);
                }
            }
            Ok(())
        })
        .unwrap();
    for k in backend.keys() {
        assert_eq!(k.matches('{').count(), 1, "{k}");
        assert_eq!(k.matches('}').count(), 1, "{k}");
    }
}

fn routing() -> impl Strategy<Value = RoutingState> {
    prop::sample::select(vec![
        RoutingState::Ready,
        RoutingState::DenyNewCall,
        RoutingState::Shutdown,
    ])
}

#[test]
fn state_values_parse_without_panics_and_round_trip() {
    let mut runner = seeded(cases(3000));
    // Store clocks are milliseconds since 1970: far below 10^19 (the parser's 19-digit cap).
    let stamp = 0u64..10_000_000_000_000_000_000;
    let pieces = prop::sample::select(vec![
        "",
        "-",
        "--",
        "READY",
        "DENY_NEW_CALL",
        "SHUTDOWN",
        "0",
        "01",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "9999999999999999999",
        " 1",
        "+1",
        "1e3",
        "é",
    ]);
    let value = prop_oneof![
        any::<String>(),
        prop::collection::vec(pieces.clone(), 0..6).prop_map(|v| v.join("-")),
        prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat()),
    ];
    runner
        .run(
            &(
                any::<u32>(),
                stamp,
                routing(),
                any::<u32>(),
                any::<String>(),
                value,
            ),
            |(load, ms, r, weight, field, raw)| {
                let v = format_value(load, ms, r, weight);
                let s = parse("7", &v).unwrap();
                prop_assert_eq!(
                    (s.pod_index, s.load, s.update_ms, s.routing_state, s.weight),
                    (7, load, ms, r, weight)
                );
                // Arbitrary input: an error or a state, never a panic; a parsed state
                // formats back to a value that parses to the same state.
                for f in [field.as_str(), "3"] {
                    match parse(f, &raw) {
                        Ok(s) => {
                            let again = parse(
                                f,
                                &format_value(s.load, s.update_ms, s.routing_state, s.weight),
                            )
                            .unwrap();
                            prop_assert_eq!(again, s);
                        }
                        Err(e) => prop_assert_eq!(e.kind(), ErrorKind::StoreError),
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

// ---- model-based: the memory store and Redis give identical results ----

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, i64, i64),
    SetIfAbsent(usize, usize, i64, i64),
    TrySet(usize, usize, i64, i64),
    Remove(usize, usize, i64),
    RemoveIf(usize, usize, i64, i64),
    Get(usize, usize),
    GetIfPersist(usize, usize),
    Services(usize),
    Batch(usize),
}

const UIDS: [&str; 4] = ["alice", "bob", "用户:1", "x}y"];
const SVCS: [&str; 3] = ["room", "chat", "ro:om"];

/// Mostly valid operations (the interesting ones write), with a bad argument now and then:
/// a uid or service that leaves its hash tag, a pod out of range, a ttl of 0 or -2.
fn op() -> impl Strategy<Value = Op> {
    let u = prop_oneof![9 => 0..3usize, 1 => Just(3usize)];
    let s = prop_oneof![9 => 0..2usize, 1 => Just(2usize)];
    let pod = prop_oneof![
        12 => prop::sample::select(vec![0i64, 1, 2, 2147483647]),
        1 => prop::sample::select(vec![-1i64, 2147483648]),
    ];
    let ttl = prop_oneof![8 => prop::sample::select(vec![-1i64, 300]), 1 => prop::sample::select(vec![0i64, -2])];
    let delay = prop::sample::select(vec![-1i64, 0, 600]);
    prop_oneof![
        (u.clone(), s.clone(), pod.clone(), ttl.clone())
            .prop_map(|(a, b, c, d)| Op::Set(a, b, c, d)),
        (u.clone(), s.clone(), pod.clone(), ttl.clone())
            .prop_map(|(a, b, c, d)| Op::SetIfAbsent(a, b, c, d)),
        (u.clone(), s.clone(), pod.clone(), ttl).prop_map(|(a, b, c, d)| Op::TrySet(a, b, c, d)),
        (u.clone(), s.clone(), delay.clone()).prop_map(|(a, b, c)| Op::Remove(a, b, c)),
        (u.clone(), s.clone(), pod, delay).prop_map(|(a, b, c, d)| Op::RemoveIf(a, b, c, d)),
        (u.clone(), s.clone()).prop_map(|(a, b)| Op::Get(a, b)),
        (u.clone(), s.clone()).prop_map(|(a, b)| Op::GetIfPersist(a, b)),
        u.prop_map(Op::Services),
        s.prop_map(Op::Batch),
    ]
}

/// One operation's result, with TTLs reduced to "temporary or persistent".
async fn apply(store: &Store, op: &Op) -> String {
    const NS: &str = "default";
    let pod = |p: i64| u32::try_from(p).unwrap_or(u32::MAX);
    let ttl = |t: i64| LinkTtl::from_secs(t);
    let r: stateful_route::Result<String> = async {
        Ok(match op {
            Op::Set(u, s, p, t) => format!(
                "{:?}",
                store
                    .set_link(NS, UIDS[*u], SVCS[*s], pod(*p), ttl(*t)?)
                    .await?
            ),
            Op::SetIfAbsent(u, s, p, t) => {
                let l = store
                    .set_link_if_absent(NS, UIDS[*u], SVCS[*s], pod(*p), ttl(*t)?)
                    .await?;
                format!("{} {}", l.pod_index, l.is_persistent())
            }
            Op::TrySet(u, s, p, t) => format!(
                "{:?}",
                store
                    .try_set_link(NS, UIDS[*u], SVCS[*s], pod(*p), ttl(*t)?)
                    .await?
            ),
            Op::Remove(u, s, d) => {
                format!("{}", store.remove_link(NS, UIDS[*u], SVCS[*s], *d).await?)
            }
            Op::RemoveIf(u, s, p, d) => {
                format!(
                    "{}",
                    store
                        .remove_link_if(NS, UIDS[*u], SVCS[*s], pod(*p), *d)
                        .await?
                )
            }
            Op::Get(u, s) => format!(
                "{:?}",
                store
                    .get_link(NS, UIDS[*u], SVCS[*s])
                    .await?
                    .map(|l| (l.pod_index, l.is_persistent()))
            ),
            Op::GetIfPersist(u, s) => format!(
                "{:?}",
                store.get_link_if_persist(NS, UIDS[*u], SVCS[*s]).await?
            ),
            Op::Services(u) => format!("{:?}", store.get_link_services(NS, UIDS[*u]).await?),
            Op::Batch(s) => format!(
                "{:?}",
                store.batch_get_links(NS, &UIDS[..3], SVCS[*s]).await?
            ),
        })
    }
    .await;
    if r.is_ok() && matches!(op, Op::Set(..) | Op::SetIfAbsent(..) | Op::TrySet(..)) {
        VALID_WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    r.unwrap_or_else(|e| format!("error {}", e.kind()))
}

/// Writes that were valid and reached a store (both stores count).
static VALID_WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn link_operations_agree_between_memory_and_redis() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = common::redis_url();
    let raw = redis::Client::open(url).unwrap();
    let cases = cases(200).max(200);
    let mut runner = seeded(cases);
    runner
        .run(&prop::collection::vec(op(), 1..40), |ops| {
            rt.block_on(async {
                let prefix = common::unique_prefix();
                let memory = Arc::new(MemoryBackend::new(KeySpace::new(prefix.clone())));
                let mem = Store::from_shared(memory.clone());
                let cfg = StoreConfig {
                    key_prefix: prefix.clone(),
                    ..StoreConfig::default()
                };
                let red = Store::redis_with(url, &cfg).await.unwrap();
                for (i, op) in ops.iter().enumerate() {
                    let (a, b) = (apply(&mem, op).await, apply(&red, op).await);
                    prop_assert_eq!(&a, &b, "step {} {:?}", i, op);
                }
                let mut con = raw.get_multiplexed_async_connection().await.unwrap();
                let redis_keys: BTreeSet<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query_async::<Vec<String>>(&mut con)
                    .await
                    .unwrap()
                    .into_iter()
                    .collect();
                let memory_keys: BTreeSet<String> = memory.keys().into_iter().collect();
                prop_assert_eq!(memory_keys, redis_keys);
                Ok(())
            })
        })
        .unwrap();
    // Most cases must exercise real writes, not just argument errors.
    let writes = VALID_WRITES.load(std::sync::atomic::Ordering::Relaxed) / 2;
    eprintln!("[properties] {cases} cases, {writes} valid writes on each store");
    assert!(
        writes >= cases as usize * 3,
        "only {writes} valid writes in {cases} cases"
    );
}
