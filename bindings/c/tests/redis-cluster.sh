#!/usr/bin/env bash
# Starts a throwaway 3-master Redis Cluster (no replicas) on free loopback ports for the C test.
# Usage: eval "$(bindings/c/tests/redis-cluster.sh start DIR)"
#          -> exports STATEFUL_ROUTE_TEST_REDIS_CLUSTER (comma-separated seed URLs)
#        bindings/c/tests/redis-cluster.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?state directory}
case "$cmd" in
start)
  command -v redis-server >/dev/null || { echo "redis-server is missing: run tests/install-deps.sh" >&2; exit 1; }
  mkdir -p "$dir"
  # Three ports whose cluster bus port (+10000) is free too.
  read -r -a ports <<<"$(python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
out = set()
while len(out) < 3:
    p = random.randrange(20000, 45000)
    if not {p, p - 10000, p + 10000} & out and free(p) and free(p + 10000):
        out.add(p)
print(" ".join(map(str, sorted(out))))
EOF
)"
  nodes=()
  for p in "${ports[@]}"; do
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
      --cluster-enabled yes --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 1000 \
      --daemonize yes --pidfile "$dir/redis-$p.pid" --logfile "$dir/redis-$p.log" >&2
    nodes+=("127.0.0.1:$p")
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 200); do
      if redis-cli -p "$p" ping 2>/dev/null | grep -q PONG; then break; fi
      sleep 0.05
    done
    redis-cli -p "$p" ping | grep -q PONG || { echo "redis-server :$p did not start" >&2; cat "$dir/redis-$p.log" >&2; exit 1; }
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 \
    || { echo "redis-cli --cluster create failed" >&2; cat "$dir/create.log" >&2; exit 1; }
  for _ in $(seq 1 300); do
    ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "the cluster did not reach cluster_state:ok" >&2; exit 1; }
  urls=$(printf 'redis://%s,' "${nodes[@]}")
  echo "export STATEFUL_ROUTE_TEST_REDIS_CLUSTER=${urls%,}"
  ;;
stop)
  for f in "$dir"/redis-*.pid; do
    [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; }
  done
  ;;
esac
