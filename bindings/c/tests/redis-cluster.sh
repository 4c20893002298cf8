#!/usr/bin/env bash
# Starts a throwaway 3-master Redis Cluster (no replicas) on leased loopback ports for the C test.
# Each node runs in DIR/nodeN (its log is DIR/nodeN/redis.log) and gets two leased ports, its
# own and its bus port (--cluster-port); tests/redis_launch.py holds the leases (tests/PORTS.md).
# Usage: eval "$(bindings/c/tests/redis-cluster.sh start DIR)"
#          -> exports STATEFUL_ROUTE_TEST_REDIS_CLUSTER (comma-separated seed URLs)
#        bindings/c/tests/redis-cluster.sh stop DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cmd=${1:?start|stop}
dir=${2:?state directory}
case "$cmd" in
start)
  command -v redis-server >/dev/null || { echo "redis-server is missing: run tests/install-deps.sh" >&2; exit 1; }
  mkdir -p "$dir"
  logs() {
    for n in "$dir"/node*; do
      echo "--- $n/redis.log (last lines)" >&2
      tail -n 40 "$n/redis.log" >&2 || true
    done
  }
  ports=()
  for i in 1 2 3; do
    launched=$(python3 "$root/tests/redis_launch.py" start "$dir/node$i" --cluster -- \
      --save "" --appendonly no --cluster-node-timeout 1000)
    eval "$launched" # port=, cluster_port=, pid=, log=
    ports+=("$port")
  done
  nodes=("${ports[@]/#/127.0.0.1:}")
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 \
    || { echo "redis-cli --cluster create failed" >&2; cat "$dir/create.log" >&2; logs; exit 1; }
  for _ in $(seq 1 300); do
    ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "the cluster did not reach cluster_state:ok" >&2; logs; exit 1; }
  urls=$(printf 'redis://%s,' "${nodes[@]}")
  echo "export STATEFUL_ROUTE_TEST_REDIS_CLUSTER=${urls%,}"
  ;;
stop)
  for f in "$dir"/node*/redis.pid; do
    if [ -f "$f" ]; then
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  ;;
esac
