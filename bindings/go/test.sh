#!/usr/bin/env bash
# The Go package's suite: builds the static library the package links
# (target/release/libstateful_route.a), then runs `go test -race` against the memory store and
# a real redis-server ($STATEFUL_ROUTE_TEST_REDIS, or one started here), and again with GOGC=1
# to shake out lifetime bugs. Both passes include the topology tests (topology_test.go), which
# start their own redis-server processes: a 3-master Redis Cluster, and a master + replica +
# sentinel whose master they kill. Benchmarks run once each (-benchtime=1x) so that they keep
# working; bindings/go/bench.sh measures them. The benchmark hooks (bench_hooks.go, bench.c) are
# built only with -tags srbench, so they do not ship in the package. The Prometheus collector
# (promcollector/, a module of its own so that the package depends on nothing) is vetted and
# tested the same way, against the same Redis.
set -euo pipefail
# CI's PATH may lack Go: use its standard install location when `go` is not on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
if [ "$CARGO_TARGET_DIR" != "$root/target" ]; then
  export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/release ${CGO_LDFLAGS:-}"
fi

echo "--- build libstateful_route.a (release)"
cargo build --release --locked --quiet -p stateful-route-c

if [ -z "${STATEFUL_ROUTE_TEST_REDIS:-}" ]; then
  state=$(mktemp -d)
  eval "$(tests/redis-server.sh start "$state")"
  trap '"$root/tests/redis-server.sh" stop "$state"; rm -rf "$state"' EXIT
fi

cd bindings/go
echo "--- gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "not gofmt-clean: $unformatted" >&2
  exit 1
fi
go vet ./...
go vet -tags srbench ./...
echo "--- go test -race (with the benchmark hooks: -tags srbench)"
go test -count=1 -race -tags srbench -bench . -benchtime=1x ./...
echo "--- go test -race with GOGC=1"
GOGC=1 go test -count=1 -race ./...
echo "--- promcollector (its own module): go vet, go test -race, again with GOGC=1"
cd promcollector
go vet ./...
go test -count=1 -race ./...
GOGC=1 go test -count=1 -race ./...
