#!/usr/bin/env bash
# The Go benchmarks of issues 3 and 6, once, with medians of 5 runs: a ComputeLinkedPod cache
# hit through cgo next to a bare cgo call and to the same hit from a C loop; 64 goroutines
# placing new users against Redis; new users on the memory store placed by round robin built
# in, as a C callback and as a Go PlacementPolicy (the callback's cost per placement), and one
# Go policy call from C alone; then the same routing written with go-redis + go-cache (the
# original design, module bench/). Prints the ratios.
set -euo pipefail
# CI's PATH may lack Go: use its standard install location when `go` is not on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
[ -n "${SKIP_CARGO_BUILD:-}" ] || cargo build --release --locked --quiet -p stateful-route-c
if [ -z "${STATEFUL_ROUTE_TEST_REDIS:-}" ]; then
  state=$(mktemp -d)
  eval "$(tests/redis-server.sh start "$state")"
  trap '"$root/tests/redis-server.sh" stop "$state"; rm -rf "$state"' EXIT
fi
cd bindings/go
out=$(mktemp)
# The benchmark hooks (bench_hooks.go, bench.c) are built only with this tag.
go test -tags srbench -run '^$' -bench . -count 5 -benchtime "${BENCHTIME:-1s}" ./... | tee "$out"
(cd bench && go test -run '^$' -bench . -count 5 -benchtime "${BENCHTIME:-1s}" ./...) | tee -a "$out"
python3 - "$out" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r'(Benchmark\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) users/s)?', line)
    if m:
        runs.setdefault(m.group(1), []).append((float(m.group(3)), float(m.group(4) or 0)))
med = {k: statistics.median(v[0] for v in vs) for k, vs in runs.items()}
noop, hit, inc = med["BenchmarkCgoNoop"], med["BenchmarkComputeLinkedPodCacheHit"], med["BenchmarkComputeLinkedPodCacheHitInC"]
print(f"\nmedians of {len(runs['BenchmarkCgoNoop'])} runs (ns/op):")
for k, v in med.items():
    print(f"  {k:45s} {v:10.1f}")
print(f"cache hit via cgo / bare cgo call           = {hit / noop:.2f}x")
print(f"cache hit via cgo / (bare cgo + hit in C)   = {hit / (noop + inc):.2f}x  (target <= 2)")
users = statistics.median(v[1] for v in runs["BenchmarkNewUserRedis64"])
print(f"new users against Redis, 64 goroutines      = {users:.0f} users/s")
ours = statistics.median(v[1] for v in runs["BenchmarkNewUser64/stateful-route"])
hand = statistics.median(v[1] for v in runs["BenchmarkNewUser64/go-redis+go-cache"])
print(f"new users, stateful-route vs go-redis+go-cache = {ours:.0f} vs {hand:.0f} users/s = {ours / hand:.2f}x")
pol = []  # one {policy: median ns} per run; the differences are paired within a run
for line in open(sys.argv[1]):
    if line.startswith("BenchmarkNewUserMemoryPolicy"):
        pol.append({name: float(v) for v, name in re.findall(r'([\d.]+) (\S+)-median-ns/user', line)})
b = statistics.median(r["builtin"] for r in pol)
dc = statistics.median(r["c-policy"] - r["builtin"] for r in pol)
dg = statistics.median(r["go-policy"] - r["builtin"] for r in pol)
print(f"new user on the memory store, built-in round_robin = {b:.0f} ns; a C callback policy adds {dc:.0f} ns, a Go PlacementPolicy {dg:.0f} ns per placement (medians of {len(pol)} runs)")
print(f"one Go policy call from C (no placement)    = {med['BenchmarkGoPolicyCallback']:.0f} ns  (bare cgo call {noop:.0f} ns)")
hit_ours, hit_hand = med["BenchmarkCacheHit/stateful-route"], med["BenchmarkCacheHit/go-redis+go-cache"]
print(f"cache hit, stateful-route vs go-cache          = {hit_ours:.0f} vs {hit_hand:.0f} ns = {hit_ours / hit_hand:.2f}x")
PY
