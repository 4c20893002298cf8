"""Reverts one fix at a time in a scratch copy of the repository and runs the test
written for it: each test must fail with its fix reverted (the suite checks it passes with it).
Usage: python3 tests/revert-check.py [NAME-SUBSTRING ...]   (builds in $TMPDIR/sr-revert-check)
Prints one line per fix; "PASSES with the fix reverted" marks a test too weak to catch it."""
import os, shutil, subprocess, sys
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sr-revert-check", "tree")
M = [
 ("1 server read view", "core/src/server.rs", "route.spawn_refresh(stop_route.subscribe());", "let _ = &stop_route;", "a_servers_read_view_keeps_refreshing"),
 ("2 phantom placements (memory)", "core/src/route_info.rs", "        if !self.kept {", "        if false && !self.kept {", "only_accepted_placements_count_memory"),
 ("2 phantom placements (redis)", "core/src/route_info.rs", "        if !self.kept {", "        if false && !self.kept {", "only_accepted_placements_count_redis"),
 ("3 canonical values (memory)", "core/src/pod_state.rs", "        || (s.len() > 1 && s.starts_with('0'))\n", "", "non_canonical_stored_values_memory"),
 ("3 canonical values (redis scripts)", "core/src/store/scripts.rs", "  if v and not (v == '0'", "  if false and v and not (v == '0'", "non_canonical_stored_values_redis"),
 ("4 freeze on any error", "core/src/route_info.rs", "Err(e) if matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout) => {", "Err(e) if true => {", "liveness_freezes_only_when_the_store_is_unreachable"),
 ("5 cancelled single-flight", "core/src/client.rs", "if (self.flight.initialized() || last)", "if (self.flight.initialized() || (last && false))", "cancelled_computes_leave_no_single_flight_entries"),
 ("6 refresh ordering", "core/src/route_info.rs", "        if ticket < applied.ticket {\n            return None;", "        if false {\n            return None;", "an_older_refresh_never_replaces_a_newer_snapshot"),
 ("7 failed first publish", "core/src/server.rs", "            if s.phase == Phase::Running {\n                s.phase = Phase::New;", "            if true {\n                s.phase = Phase::New;", "a_failed_first_publish_does_not_reopen_a_stopped_driver"),
 ("7 tick vs stop workload write", "core/src/server.rs", "        if let Err(e) = self.publish_with_workload().await {", "        let _ = self.publish().await;\n        if let Err(e) = self.publish_workload(\"READY\").await {", "concurrent_start_and_stop_end_shut_down"),
 ("8 config bounds", "core/src/config.rs", "        if !(MIN_SECONDS..=MAX_SECONDS).contains(&p) {", "        if !(p > 0.0 && p <= MAX_SECONDS) {", "float_config_fields_are_bounded"),
 ("9 view eviction", "core/src/route_info.rs", "        self.evict_idle();\n", "", "views_of_unused_services_are_evicted"),
 ("10 delayed remove (memory)", "core/src/store/memory.rs", "let shortens = e.expires_ms.is_none_or(|t| at < t);", "let shortens = true;", "a_delayed_remove_never_lengthens_a_link_memory"),
 ("10 delayed remove (redis)", "core/src/store/scripts.rs", "elseif pttl < 0 or delay * 1000 < pttl then", "elseif true then", "a_delayed_remove_never_lengthens_a_link_redis"),
 ("11 stale bound", "core/src/config.rs", "Duration::from_secs_f64(self.serve_stale_seconds).min(self.cache_margin())", "Duration::from_secs_f64(self.serve_stale_seconds)", "serving_stale_is_bounded_by_the_cache_margin"),
 ("12 resend of an unknown-outcome write", "core/src/store/redis.rs", 'let not_run = e.code() == Some("READONLY") || e.is_connection_refusal();', "let not_run = true;", "sentinel_connection_failures", "sentinel"),
 ("12 one resolution per failure", "core/src/store/redis.rs", "if failed.is_none_or(|f| !Arc::ptr_eq(f, &current)) {", "if false && failed.is_none_or(|f| !Arc::ptr_eq(f, &current)) {", "sentinel_connection_failures", "sentinel"),
 ("faults: dropped connection is STORE_UNAVAILABLE", "core/src/store/redis.rs", ".set_number_of_retries(0)", ".set_number_of_retries(2)", "dropped_connections_are_store_unavailable_then_reconnect", "faults"),
 ("15 slow start", "core/src/route_info.rs", "            Some((from, until)) if now < until => {", "            Some((from, until)) if false && now < until => {", "a_joining_pod_ramps_up_instead_of_taking_every_new_user"),
 ("4 empty restart after an outage", "core/src/route_info.rs", "        for pod in vanished {", "        for pod in Vec::<u32>::new() {", "pods_stay_alive_across_an_outage_and_an_empty_restart"),
 ("17 a read in flight is not cached", "core/src/client.rs", "        if !self.coherence.is_current(ticket) {", "        if false && !self.coherence.is_current(ticket) {", "a_read_in_flight_when_its_event_arrives_is_not_cached", "propagation"),
 ("17 a move publishes (scripts)", "core/src/store/scripts.rs", "if changed then publish_link(ARGV[2], ttl) end", "", "a_persistent_move_reaches_the_other_gateway_within_a_second", "propagation"),
 ("17 a resume empties the cache", "core/src/client.rs", "                    cache.clear();\n                    // Pod events", "                    // Pod events", "a_gap_in_the_stream_empties_the_cache", "propagation"),
 ("17 a pod event re-reads the snapshot", "core/src/client.rs", "                        route.refresh_if_loaded(&service).await;", "                        let _ = &route;", "drain_and_stop_reach_a_gateway_that_refreshes_every_30_s", "propagation"),
 ("13 incremental sweep", "core/src/store/memory.rs", "        for _ in 0..SWEEP_PER_WRITE {", "        for _ in 0..usize::MAX {", "the_memory_store_reclaims_expired_keys_a_few_per_write"),
]
only = sys.argv[1:]
if os.path.exists(WORK): shutil.rmtree(WORK)
shutil.copytree(SRC, WORK, ignore=shutil.ignore_patterns("target", "node_modules", ".venv*", ".git"))
env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(os.environ.get("TMPDIR", "/tmp"), "sr-revert-check", "target"), CARGO_TERM_COLOR="never")
results = []
for entry in M:
    name, f, old, new, test = entry[:5]
    binary = entry[5] if len(entry) > 5 else "hardening"
    if only and not any(o in name for o in only): continue
    p = os.path.join(WORK, f)
    orig = open(p).read()
    assert old in orig, (name, old)
    open(p, "w").write(orig.replace(old, new, 1))
    r = subprocess.run(["cargo", "test", "-q", "-p", "stateful-route", "--test", binary, "--", "--exact", test],
                       cwd=WORK, env=env, capture_output=True, text=True)
    open(p, "w").write(orig)
    out = r.stdout + r.stderr
    verdict = "FAILS with the fix reverted" if r.returncode != 0 and "test result: FAILED" in out else ("did not compile" if "error[" in out else "PASSES with the fix reverted (weak test)")
    results.append((name, test, verdict))
    print(f"{name}: {test}: {verdict}", flush=True)
weak = [r for r in results if not r[2].startswith("FAILS")]
sys.exit(1 if weak else 0)
