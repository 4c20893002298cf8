#!/usr/bin/env bash
# Starts a throwaway redis-server on a free loopback port for the test suites.
# Usage: eval "$(tests/redis-server.sh start DIR)"   -> exports STATEFUL_ROUTE_TEST_REDIS, STATEFUL_ROUTE_TEST_REDIS_PID
#        tests/redis-server.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?state directory}
case "$cmd" in
start)
  command -v redis-server >/dev/null || { echo "redis-server is missing: run tests/install-deps.sh" >&2; exit 1; }
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
  for _ in $(seq 1 200); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.05
  done
  redis-cli -p "$port" ping | grep -q PONG || { echo "redis-server did not start" >&2; cat "$dir/redis.log" >&2; exit 1; }
  echo "export STATEFUL_ROUTE_TEST_REDIS=redis://127.0.0.1:$port"
  echo "export STATEFUL_ROUTE_TEST_REDIS_PID=$(cat "$dir/redis.pid")"
  ;;
stop)
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  ;;
esac
