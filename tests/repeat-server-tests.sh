#!/usr/bin/env bash
# Runs every test that starts redis-server processes of its own (clusters, sentinels, killed
# and restarted servers) N times in a row, in one loop, and prints the count: a flaky port or
# start-up race shows as a failed round. Each failed round's output is kept.
# Usage: tests/repeat-server-tests.sh [N] (default 30). Needs what `make test` builds:
# the Rust test binaries, python/.venv (python/test.sh) and target/release/libstateful_route.a.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
logs=$(mktemp -d)
cargo test --locked -q -p stateful-route --test cluster --test sentinel --test faults --no-run \
  >"$logs/build.log" 2>&1 || { cat "$logs/build.log"; exit 1; }
venv=${STATEFUL_ROUTE_PY_VENV:-$root/python/.venv}
export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/release ${CGO_LDFLAGS:-}"
pass=0
fail=0
for i in $(seq 1 "$n"); do
  ok=1
  cargo test --locked -q -p stateful-route --test cluster --test sentinel --test faults \
    >"$logs/$i-rust.log" 2>&1 || ok=0
  if [ -x "$venv/bin/pytest" ]; then
    "$venv/bin/pytest" -q python/tests/test_scale_out.py >"$logs/$i-python.log" 2>&1 || ok=0
  fi
  (cd bindings/go && go test -count=1 -run 'Cluster|Sentinel|Topology' . ) >"$logs/$i-go.log" 2>&1 || ok=0
  d="$logs/$i-c"
  { eval "$(bindings/c/tests/redis-cluster.sh start "$d")" &&
    redis-cli -c -u "${STATEFUL_ROUTE_TEST_REDIS_CLUSTER%%,*}" set k v | grep -q OK; } \
    >"$logs/$i-c.log" 2>&1 || ok=0
  bindings/c/tests/redis-cluster.sh stop "$d" >/dev/null 2>&1
  if [ "$ok" = 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "round $i failed: $logs/$i-*.log"; fi
done
echo "server-starting tests, $n rounds: $pass passed, $fail failed"
[ "$fail" = 0 ]
