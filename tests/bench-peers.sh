#!/usr/bin/env bash
# `make bench-peers`: every row of the "faster than the hand-written router" table in one go,
# each pair measured in the same run on the same machine and the same Redis, printed as a
# table with the goals and written to target/bench-peers.json.
#
#   core hit vs a bare moka get           criterion (wall) and callgrind (instructions)
#   core new users vs raw EVALSHA         core/benches/redis_throughput.rs (64 tasks)
#   Python awaited hit / new users        python/bench.sh (vs redis-py asyncio + a dict TTL cache)
#   Node awaited hit / new users          node/bench.sh (vs ioredis + a Map TTL cache)
#   Go cache hit / new users              bindings/go/bench.sh (vs go-redis + go-cache)
#
# The peers live next to each binding's bench and do what a competent team would write: a
# pooled client, the same Lua script, a TTL map, a snapshot refreshed each period. Each bench
# takes medians of 5 rounds; the logs stay in target/bench-peers/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
tests/install-deps.sh
state=$(mktemp -d)
eval "$(tests/redis-server.sh start "$state")"
trap 'tests/redis-server.sh stop "$state"; rm -rf "$state"' EXIT
url=$STATEFUL_ROUTE_TEST_REDIS
logs="$CARGO_TARGET_DIR/bench-peers"
mkdir -p "$logs"

echo "== core: cache hit vs bare moka get (criterion) ==" >&2
cargo bench --locked -p stateful-route --bench compute -- --warm-up-time 2 --measurement-time 5 \
  >"$logs/core-criterion.log" 2>&1
echo "== core: instructions per hit (callgrind) ==" >&2
cargo bench --locked -p stateful-route --bench hit_instructions --no-run >/dev/null 2>&1
bin=$(ls -t "$CARGO_TARGET_DIR"/release/deps/hit_instructions-* | grep -v '\.d$' | head -1)
: >"$logs/core-callgrind.log"
if command -v valgrind >/dev/null; then
  for mode in bare hit; do
    for n in 20000 40000; do
      ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" $mode $n 2>&1 |
        sed -n 's/.*Collected : //p')
      echo "$mode $n $ir" >>"$logs/core-callgrind.log"
    done
  done
fi
echo "== core: new users vs raw EVALSHA (Redis) ==" >&2
cargo bench --locked -p stateful-route --bench redis_throughput >"$logs/core-redis.log" 2>&1
echo "== Python ==" >&2
python/bench.sh --redis "$url" >"$logs/python.log" 2>&1
echo "== Node ==" >&2
node/bench.sh --redis "$url" >"$logs/node.log" 2>&1
echo "== Go ==" >&2
bindings/go/bench.sh >"$logs/go.log" 2>&1

python3 - "$logs" "$CARGO_TARGET_DIR/bench-peers.json" <<'PY'
import json, re, sys
from pathlib import Path

logs, out = Path(sys.argv[1]), Path(sys.argv[2])
read = lambda name: (logs / name).read_text(errors="replace")


def num(s):
    return float(s.replace(",", ""))


def find(text, pattern, what):
    m = re.search(pattern, text, re.MULTILINE)
    if not m:
        sys.exit(f"bench-peers: no {what} in the logs ({pattern!r}); see {logs}")
    return [num(g) for g in m.groups()]


rows = []


def row(path, ours, peer, unit, higher_is_better, goal, goal_text):
    # ratio > 1 means ours is better (faster, or more per second).
    ratio = ours / peer if higher_is_better else peer / ours
    rows.append(dict(path=path, ours=ours, peer=peer, unit=unit, ratio=round(ratio, 3),
                     goal=goal, goal_text=goal_text, met=ratio >= goal))


crit = read("core-criterion.log")
bare = find(crit, r"cache_hit/bare_moka_get\s+time:\s+\[\S+ \S+ ([\d.]+) ns", "bare moka get")[0]
hit = find(crit, r"cache_hit/compute_cached\s+time:\s+\[\S+ \S+ ([\d.]+) ns", "core hit")[0]
row("core hit vs bare moka get (wall)", hit, bare, "ns", False, 1 / 1.2, "<= 1.2x the get")
cg = {}
for line in read("core-callgrind.log").splitlines():
    mode, n, ir = line.split()
    cg[(mode, int(n))] = int(ir)
if cg:
    per = {m: (cg[(m, 40000)] - cg[(m, 20000)]) / 20000 for m in ("bare", "hit")}
    row("core hit vs bare moka get (instructions)", per["hit"], per["bare"], "instr", False,
        1 / 1.2, "<= 1.2x the get")
raw, ours = find(read("core-redis.log"), r"median: raw EVALSHA ([\d.]+)/s, compute_linked_pod ([\d.]+)/s",
                 "core new users")
row("core new users (64 tasks) vs raw EVALSHA", ours, raw, "/s", True, 0.85, ">= 0.85")

py = read("python.log")
ph_ours = find(py, r"^\s+stateful_route\s+([\d.]+) hits/s", "Python hits")[0]
ph_peer = find(py, r"^\s+redis-py \+ dict cache\s+([\d.]+) hits/s", "redis-py hits")[0]
row("Python awaited hit vs dict + expiry", ph_ours, ph_peer, "/s", True, 1.0, ">= 1.0x")
pn_ours = find(py, r"^\s+stateful_route asyncio\s+([\d.]+) users/s", "Python new users")[0]
pn_peer = find(py, r"^\s+redis-py asyncio \+ dict cache\s+([\d.]+) users/s", "redis-py new users")[0]
row("Python new users vs redis-py asyncio", pn_ours, pn_peer, "/s", True, 4.0, ">= 4x")

nd = read("node.log")
nh = re.findall(r"^\s+(stateful-route|ioredis \+ Map cache)\s+([\d.,]+) hits/s", nd, re.MULTILINE)
hits = {k: num(v) for k, v in nh}
if len(hits) != 2:
    sys.exit(f"bench-peers: Node hit lines not found; see {logs}/node.log")
row("Node awaited hit vs a Map + expiry", hits["stateful-route"], hits["ioredis + Map cache"], "/s",
    True, 1.0, ">= 1.0x")
nn_ours = find(nd, r"^\s+stateful-route \(Node\)\s+([\d.,]+) users/s", "Node new users")[0]
nn_peer = find(nd, r"^\s+ioredis \+ Map cache\s+([\d.,]+) users/s", "ioredis new users")[0]
row("Node new users (64 Promises) vs ioredis + Map", nn_ours, nn_peer, "/s", True, 1.3, ">= 1.3x")

go = read("go.log")
gn_ours, gn_peer = find(go, r"new users, stateful-route vs go-redis\+go-cache = ([\d.]+) vs ([\d.]+) users/s",
                        "Go new users")
row("Go new users (64 goroutines) vs go-redis + go-cache", gn_ours, gn_peer, "/s", True, 1.1, ">= 1.1x")
gh_ours, gh_peer = find(go, r"cache hit, stateful-route vs go-cache\s+= ([\d.]+) vs ([\d.]+) ns", "Go hits")
row("Go cache hit vs go-cache Get", gh_ours, gh_peer, "ns", False, 1.0, "<= 1.0x the Get")

print("| path | ours | peer | ours vs peer (> 1: ours better) | goal | met |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    fmt = lambda v: f"{v:,.1f} {r['unit']}" if r["unit"] in ("ns", "instr") else f"{v:,.0f} {r['unit']}"
    print(f"| {r['path']} | {fmt(r['ours'])} | {fmt(r['peer'])} | {r['ratio']:.2f} | {r['goal_text']} | "
          f"{'yes' if r['met'] else 'no'} |")
out.write_text(json.dumps(rows, indent=1) + "\n")
print(f"\n(written to {out}; logs in {logs})")
PY
