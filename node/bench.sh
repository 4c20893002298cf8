#!/usr/bin/env bash
# Runs node/bench.js as a user would: `npm install <repo>/node ioredis` into a fresh temporary
# directory (ioredis only for the comparison; the addon built with the `bench` feature, which
# adds bench.js's measuring points), then the benchmark. Arguments go to bench.js (--redis URL,
# --hits N, --new-users N); Redis defaults to $STATEFUL_ROUTE_TEST_REDIS or a throwaway server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
STATEFUL_ROUTE_NODE_BENCH=1 npm install --no-audit --no-fund --loglevel=error "$here" ioredis@5.9.2 >&2
node "$here/bench.js" "$@"
