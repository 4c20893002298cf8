#!/usr/bin/env bash
# Regenerates include/stateful_route.h with the pinned cbindgen and fails if it differs from
# the committed header. `--write` updates the committed header instead.
# cbindgen is installed once (cargo install --locked, its own lock file) under the target
# directory, so the workspace's Cargo.lock and builds stay free of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
CBINDGEN_VERSION=0.29.4
target=${CARGO_TARGET_DIR:-$root/target}
tools="$target/tools/cbindgen-$CBINDGEN_VERSION"
cbindgen="$tools/bin/cbindgen"
if ! [ -x "$cbindgen" ] || [ "$("$cbindgen" --version)" != "cbindgen $CBINDGEN_VERSION" ]; then
  echo "installing cbindgen $CBINDGEN_VERSION into $tools" >&2
  CARGO_TARGET_DIR="$target/tools/build" cargo install --quiet cbindgen --version "$CBINDGEN_VERSION" --locked --root "$tools"
fi
header=include/stateful_route.h
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
"$cbindgen" --quiet --config bindings/c/cbindgen.toml --crate stateful-route-c --output "$fresh" bindings/c
if [ "${1:-}" = "--write" ]; then
  cp "$fresh" "$header"
  echo "wrote $header"
elif ! diff -u "$header" "$fresh"; then
  echo "error: $header is stale; run bindings/c/check-header.sh --write and commit it" >&2
  exit 1
else
  echo "$header is fresh"
fi
