#!/usr/bin/env bash
# The C API's suite: builds the library, checks the header is fresh, compiles the header as
# C99 and C++ with warnings as errors, checks the header and the defaults against
# tests/vectors/surface.json (tests/surface.py), then builds tests/test_c.c with AddressSanitizer and
# UBSan and runs it against the memory store, a real redis-server ($STATEFUL_ROUTE_TEST_REDIS,
# or one started here) and a 3-master Redis Cluster ($STATEFUL_ROUTE_TEST_REDIS_CLUSTER, or
# one started here by tests/redis-cluster.sh). Any leak LeakSanitizer reports fails it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
out="$CARGO_TARGET_DIR/c-test"
mkdir -p "$out"

echo "--- build libstateful_route (debug)"
cargo build --locked --quiet -p stateful-route-c
lib="$CARGO_TARGET_DIR/debug/libstateful_route.a"

echo "--- header is fresh"
bindings/c/check-header.sh

echo "--- header compiles as C99 and C++"
cc=${CC:-cc}
cxx=${CXX:-c++}
printf '#include "stateful_route.h"\nint main(void) { return sr_version() == 0; }\n' >"$out/h.c"
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude -c "$out/h.c" -o "$out/h_c.o"
"$cxx" -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude -x c++ -c "$out/h.c" -o "$out/h_cpp.o"

echo "--- surface: header, defaults, codes and placements against tests/vectors/surface.json"
"$cc" -std=c11 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -Iinclude bindings/c/tests/surface.c "$lib" -lm -ldl -lpthread -o "$out/surface"
ASAN_OPTIONS=detect_leaks=1 "${PYTHON:-python3}" bindings/c/tests/surface.py "$out/surface"

echo "--- C test under ASan + UBSan"
"$cc" -std=c11 -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=undefined -Iinclude bindings/c/tests/test_c.c "$lib" -lm -ldl -lpthread \
  -o "$out/test_c"
state=$(mktemp -d)
cleanup() {
  "$root/tests/redis-server.sh" stop "$state/single"
  "$root/tests/redis-server.sh" stop "$state/fault"
  "$root/bindings/c/tests/redis-cluster.sh" stop "$state/cluster"
  rm -rf "$state"
}
trap cleanup EXIT
if [ -z "${STATEFUL_ROUTE_TEST_REDIS:-}" ]; then
  eval "$(tests/redis-server.sh start "$state/single")"
fi
# A server of the test's own, which it stops (SIGSTOP), kills and starts again on its port.
fault=$(tests/redis-server.sh start "$state/fault")
STATEFUL_ROUTE_TEST_REDIS_FAULT=$(eval "$fault"; echo "$STATEFUL_ROUTE_TEST_REDIS")
STATEFUL_ROUTE_TEST_REDIS_FAULT_PID=$(eval "$fault"; echo "$STATEFUL_ROUTE_TEST_REDIS_PID")
export STATEFUL_ROUTE_TEST_REDIS_FAULT STATEFUL_ROUTE_TEST_REDIS_FAULT_PID
export STATEFUL_ROUTE_TEST_REDIS_FAULT_DIR="$state/fault"
if [ -z "${STATEFUL_ROUTE_TEST_REDIS_CLUSTER:-}" ]; then
  eval "$(bindings/c/tests/redis-cluster.sh start "$state/cluster")"
fi
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 "$out/test_c"
