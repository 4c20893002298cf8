#!/usr/bin/env bash
# The release artifacts of target/dist/ (tests/dist.sh, `make dist`) installed as a user
# installs them, with no Rust toolchain on PATH (every directory holding cargo, rustc or rustup
# is removed from it): the wheel into a fresh venv, the npm tarball into a fresh directory, the
# C package's example built with its pkg-config file, a Go program built against the shipped
# Go module (lib/linux_amd64/libstateful_route.a) with CGO_ENABLED=1. Then the sdist, with the
# toolchain, builds from source. Each runs tests/dist/'s scenario (two pods, drain, a bad uid)
# on the memory store and on Redis and must print tests/dist/expected.txt; each reports the
# workspace version. Redis: $STATEFUL_ROUTE_TEST_REDIS, or one started here.
# Runs tests/dist.sh first unless STATEFUL_ROUTE_DIST_BUILT=1 (target/dist is then reused).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
dist="$root/target/dist"
python=${PYTHON:-python3}
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

if [ "${STATEFUL_ROUTE_DIST_BUILT:-}" != 1 ]; then
  tests/dist.sh
fi
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)

work=$(mktemp -d)
started_redis=""
cleanup() {
  if [ -n "$started_redis" ]; then tests/redis-server.sh stop "$work/redis"; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${STATEFUL_ROUTE_TEST_REDIS:-}" ]; then
  eval "$(tests/redis-server.sh start "$work/redis")"
  started_redis=1
fi
redis=$STATEFUL_ROUTE_TEST_REDIS

# PATH without the Rust toolchain.
nopath=""
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  if [ -z "$d" ] || [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -e "$d/rustup" ]; then continue; fi
  nopath="${nopath:+$nopath:}$d"
done
no_rust() { env -u CARGO_TARGET_DIR -u RUSTUP_TOOLCHAIN PATH="$nopath" "$@"; }
if no_rust sh -c 'command -v cargo || command -v rustc' >/dev/null; then
  echo "dist-check: could not take the Rust toolchain off PATH" >&2
  exit 1
fi

one() { # one FILE-GLOB: the single artifact that matches
  local matches=("$dist"/$1)
  if [ "${#matches[@]}" -ne 1 ] || [ ! -e "${matches[0]}" ]; then
    echo "dist-check: expected one $1 in $dist, found: ${matches[*]}" >&2
    exit 1
  fi
  echo "${matches[0]}"
}

failed=0
compare() { # compare NAME OUTPUT-FILE
  if diff -u tests/dist/expected.txt "$2" >"$work/$1.diff"; then
    echo "ok: $1"
  else
    echo "FAILED: $1" >&2
    cat "$work/$1.diff" >&2
    failed=1
  fi
}
check_version() { # check_version NAME VERSION
  if [ "$2" != "$version" ]; then
    echo "FAILED: $1 reports version '$2', the workspace $version" >&2
    failed=1
  fi
}

t0=$SECONDS
echo "--- wheel: pip install $(basename "$(one '*.whl')") (no Rust on PATH)"
no_rust "$python" -m venv "$work/wheel"
no_rust "$work/wheel/bin/pip" install --quiet --no-index "$(one '*.whl')"
# The scenario runs from $work, so only the installed package can be imported.
cp tests/dist/scenario.py "$work/"
no_rust "$work/wheel/bin/python" "$work/scenario.py" "$redis" "dist-wheel-$$" >"$work/wheel.out"
compare wheel "$work/wheel.out"
check_version wheel "$(no_rust "$work/wheel/bin/python" -c \
  'import importlib.metadata as m; print(m.version("stateful-route"))')"

echo "--- npm: npm install $(basename "$(one '*.tgz')") (no Rust on PATH)"
mkdir "$work/npm"
(cd "$work/npm" && no_rust npm init -y >/dev/null &&
  no_rust npm install --no-audit --no-fund --foreground-scripts "$(one '*.tgz')") >"$work/npm.log" 2>&1 ||
  { cat "$work/npm.log" >&2; exit 1; }
if ! grep -q 'stateful-route: using the prebuilt addon for linux-x64-gnu' "$work/npm.log"; then
  echo "FAILED: npm install did not use the prebuilt addon:" >&2
  cat "$work/npm.log" >&2
  failed=1
fi
cp tests/dist/scenario.js "$work/npm/"
(cd "$work/npm" && no_rust node scenario.js "$redis" "dist-npm-$$") >"$work/npm.out"
compare npm "$work/npm.out"
check_version npm "$(cd "$work/npm" && node -p "require('stateful-route/package.json').version")"

echo "--- C: example.c with pkg-config (no Rust on PATH)"
mkdir "$work/c"
tar -C "$work/c" -xzf "$(one 'stateful-route-c-*.tar.gz')"
pc_dir=$(echo "$work"/c/*/lib/pkgconfig)
cc=${CC:-cc}
(cd "$work/c" && no_rust env PKG_CONFIG_PATH="$pc_dir" sh -c \
  "$cc -o example */share/stateful-route/example.c \$(pkg-config --cflags --libs stateful-route)")
no_rust "$work/c/example" "$redis" "dist-c-$$" >"$work/c.out"
compare c "$work/c.out"
check_version c "$(PKG_CONFIG_PATH="$pc_dir" pkg-config --modversion stateful-route)"

echo "--- Go: CGO_ENABLED=1 go build against the shipped module (no Rust on PATH)"
mkdir -p "$work/go/prog"
tar -C "$work/go" -xzf "$(one 'stateful-route-go-*.tar.gz')"
cp tests/dist/go/main.go "$work/go/prog/"
if grep -rlq sr_go_bench "$work"/go/stateful-route-go-*/; then
  echo "FAIL go: the module ships benchmark hooks" >&2
  failed=1
fi
cat >"$work/go/prog/go.mod" <<MOD
module example.com/scenario

go 1.24

require github.com/stateful-route/stateful-route/bindings/go v$version

replace github.com/stateful-route/stateful-route/bindings/go => $(echo "$work"/go/stateful-route-go-*)
MOD
(cd "$work/go/prog" && no_rust env -u CGO_LDFLAGS -u CGO_CFLAGS CGO_ENABLED=1 GOFLAGS=-mod=mod \
  go build -o scenario .)
no_rust "$work/go/prog/scenario" "$redis" "dist-go-$$" >"$work/go.out"
compare go "$work/go.out"
echo "--- the four installs took $((SECONDS - t0)) s"

t1=$SECONDS
echo "--- sdist: pip install $(basename "$(one 'stateful_route-*.tar.gz')") (builds from source)"
"$python" -m venv "$work/sdist"
"$work/sdist/bin/pip" install --quiet "$(one 'stateful_route-*.tar.gz')"
"$work/sdist/bin/python" "$work/scenario.py" "$redis" "dist-sdist-$$" >"$work/sdist.out"
compare sdist "$work/sdist.out"
check_version sdist "$("$work/sdist/bin/python" -c \
  'import importlib.metadata as m; print(m.version("stateful-route"))')"
echo "--- the sdist took $((SECONDS - t1)) s"

if [ "$failed" != 0 ]; then
  echo "dist-check FAILED" >&2
  exit 1
fi
echo "dist-check passed: wheel, npm, C, Go without a Rust toolchain; sdist from source"
