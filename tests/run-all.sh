#!/usr/bin/env bash
# Runs every test suite: Rust core, then each binding whose test script exists, then the
# release artifacts (`make dist`) installed without a Rust toolchain (dist-check).
# Installs what is missing (redis-server), starts one redis-server on a free loopback port
# for the suites that take STATEFUL_ROUTE_TEST_REDIS, and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tests/install-deps.sh
state=$(mktemp -d)
eval "$(tests/redis-server.sh start "$state")"
trap 'tests/redis-server.sh stop "$state"' EXIT

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
suites=(rust)
[ -x tests/readme-check.sh ] && suites+=(readme)
[ -x python/test.sh ] && suites+=(python)
[ -x node/test.sh ] && suites+=(node)
[ -x bindings/c/test.sh ] && suites+=(c)
[ -x bindings/go/test.sh ] && suites+=(go)
[ -x tests/dist-check.sh ] && suites+=(dist-check)
only=${STATEFUL_ROUTE_SUITES:-}
for s in "${suites[@]}"; do
  if [ -n "$only" ] && [[ " $only " != *" $s "* ]]; then continue; fi
  echo "=== suite: $s ==="
  case "$s" in
    rust)
      # The C crate's tests dlopen the cdylib, which `cargo test` does not build by itself.
      cargo build --locked -p stateful-route-c
      cargo test --locked -p stateful-route -p stateful-route-c
      # The operator CLI as the built binary, the dashboard in headless chromium (its
      # screenshot stays at target/dashboard.png).
      cargo test --locked -p stateful-route --features cli --test cli
      # Virtual time and the fleet simulator (a 20-seed sweep of chaos), in release: the
      # sweep checks every invariant over millions of simulated answers.
      cargo test --locked --release -p stateful-route --features sim --test sim
      ;;
    readme) tests/readme-check.sh ;;
    python) python/test.sh ;;
    node) node/test.sh ;;
    c) bindings/c/test.sh ;;
    go) bindings/go/test.sh ;;
    # Last: `make dist` reuses the release build the suites above made.
    dist-check) tests/dist-check.sh ;;
  esac
done
