#!/usr/bin/env bash
# The Node suite, as a user meets the package: `npm install <repo>/node` into a fresh temporary
# directory (this builds the addon from the Rust sources), then `node --test` on test/*.test.*
# against Store.memory() and a real redis-server on loopback, then `tsc --noEmit` on
# test/types.ts. Uses $STATEFUL_ROUTE_TEST_REDIS if set, else starts a throwaway redis-server.
# Exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export STATEFUL_ROUTE_VECTORS="$root/tests/vectors/links.json"

work=$(mktemp -d)
started_redis=""
cleanup() {
  if [ -n "$started_redis" ]; then "$root/tests/redis-server.sh" stop "$work/redis"; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${STATEFUL_ROUTE_TEST_REDIS:-}" ]; then
  eval "$("$root/tests/redis-server.sh" start "$work/redis")"
  started_redis=1
fi

cd "$work"
npm init -y >/dev/null
echo "--- npm install $here (builds the addon)"
npm install --no-audit --no-fund --foreground-scripts "$here" typescript@5.9.3
cp -r "$here/test" "$work/test"

echo "--- node --test"
node --test test/*.test.js

echo "--- tsc --noEmit test/types.ts"
npx --no-install tsc --noEmit -p test/tsconfig.json
echo "node suite passed"
