#!/usr/bin/env bash
# Starts a throwaway redis-server on a leased loopback port for the test suites (the port
# protocol is in tests/PORTS.md: tests/redis_launch.py leases the port, hands its lock to the
# detached server, and retries when another process took the port first).
# Usage: eval "$(tests/redis-server.sh start DIR)"   -> exports STATEFUL_ROUTE_TEST_REDIS, STATEFUL_ROUTE_TEST_REDIS_PID
#        tests/redis-server.sh stop DIR
# The server logs to DIR/redis.log; a failed start prints the log's last lines on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?start|stop}
dir=${2:?state directory}
case "$cmd" in
start)
  command -v redis-server >/dev/null || { echo "redis-server is missing: run tests/install-deps.sh" >&2; exit 1; }
  launched=$(python3 "$here/redis_launch.py" start "$dir" -- --save "" --appendonly no)
  eval "$launched" # port=, pid=, log=
  echo "export STATEFUL_ROUTE_TEST_REDIS=redis://127.0.0.1:$port"
  echo "export STATEFUL_ROUTE_TEST_REDIS_PID=$pid"
  ;;
stop)
  if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
  ;;
esac
