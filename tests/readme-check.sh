#!/usr/bin/env bash
# The README's Rust and C examples run as printed (the Python, JS and Go ones are in their
# bindings' suites: python/tests/test_readme.py, node/test/readme.test.js,
# bindings/go/readme_test.go). tests/readme_blocks.py extracts each runnable block and the
# output the README shows after it.
# - Rust: the README's block must be identical to core/examples/readme.rs (so rustfmt and
#   clippy see it), which runs with `cargo run --example readme` on the memory store.
# - C: each ```c block is compiled against include/stateful_route.h and the debug static
#   library (as bindings/c/test.sh links it), with ASan + UBSan, and run.
# Exits non-zero if a block differs, fails to build, fails, or prints something else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
status=0

echo "--- README rust block = core/examples/readme.rs"
"$python" tests/readme_blocks.py check-rust
"$python" tests/readme_blocks.py rust "$work/rust" >/dev/null
echo "--- cargo run --example readme"
cargo run --locked --quiet -p stateful-route --example readme >"$work/rust.out"
if diff -u --label "README.md (expected)" --label "example readme (printed)" \
  "$work"/rust/block*.expected "$work/rust.out"; then
  echo "ok: rust"
else
  status=1
fi

echo "--- README c blocks"
cargo build --locked --quiet -p stateful-route-c
lib="$CARGO_TARGET_DIR/debug/libstateful_route.a"
cc=${CC:-cc}
srcs=$("$python" tests/readme_blocks.py c "$work/c")
for src in $srcs; do
  name=$(basename "$src" .c)
  "$cc" -std=c11 -g -Wall -Wextra -Werror -pedantic -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -Iinclude "$src" "$lib" -lm -ldl -lpthread -o "$work/c/$name"
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 "$work/c/$name" >"$work/c/$name.out"
  if diff -u --label "README.md $name (expected)" --label "$name (printed)" \
    "$work/c/$name.expected" "$work/c/$name.out"; then
    echo "ok: c $name"
  else
    status=1
  fi
done
exit "$status"
