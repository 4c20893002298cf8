#!/usr/bin/env bash
# The core's benchmarks, as recorded in BENCHMARKS.md:
#  1. criterion: cache hit vs a bare moka get (wall time, medians);
#  2. callgrind: instructions per cache hit vs per bare moka get (repeatable on a noisy machine);
#  3. Redis: new-user throughput from 64 tasks vs raw EVALSHA of the same script;
#  4. propagation: latency to 8 gateways, Redis cost per moved and new user, cost of a gap.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/install-deps.sh
state=$(mktemp -d)
eval "$(tests/redis-server.sh start "$state")"
trap 'tests/redis-server.sh stop "$state"' EXIT

echo "== criterion: cache hit vs bare moka get, and with metrics off =="
cargo bench --locked -p stateful-route --bench compute -- --warm-up-time 2 --measurement-time 5 2>&1 \
  | grep -E "^cache_hit|time:" | paste - - | sed 's/ \+/ /g'

echo "== callgrind: instructions per call (difference of 20k and 40k iterations / 20k) =="
cargo bench --locked -p stateful-route --bench hit_instructions --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/hit_instructions-* | grep -v '\.d$' | head -1)
if command -v valgrind >/dev/null; then
  declare -A ir
  for mode in bare hit hit_metrics_off; do
    for n in 20000 40000; do
      ir[$mode$n]=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" $mode $n 2>&1 | sed -n 's/.*Collected : //p')
    done
  done
  bare=$(( (ir[bare40000] - ir[bare20000]) / 20000 ))
  hit=$(( (ir[hit40000] - ir[hit20000]) / 20000 ))
  off=$(( (ir[hit_metrics_off40000] - ir[hit_metrics_off20000]) / 20000 ))
  echo "bare moka get: $bare instructions; compute_cached hit: $hit instructions; ratio $(python3 -c "print(f'{$hit/$bare:.2f}')")"
  echo "hit with metrics off: $off instructions; metrics on / off: $(python3 -c "print(f'{$hit/$off:.3f}')")"
else
  echo "valgrind not installed: skipped the instruction count"
fi

echo "== Redis: new-user throughput, 64 tasks (raw EVALSHA vs driver; then one node vs a 3-master cluster) =="
STATEFUL_ROUTE_BENCH_CLUSTER=1 cargo bench --locked -p stateful-route --bench redis_throughput 2>&1 | grep -E "round|median"

echo "== propagation: latency, Redis cost per moved / new user, a gap with 100 000 cached users =="
cargo run --locked --release -q -p stateful-route --example propagation -- "$STATEFUL_ROUTE_TEST_REDIS"
