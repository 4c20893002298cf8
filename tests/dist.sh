#!/usr/bin/env bash
# `make dist`: the release artifacts, into target/dist/, all from one release build of the core
# (target/release, shared with the test suites):
#   stateful_route-V-cp39-abi3-manylinux_*.whl  Python wheel (maturin, checked by its auditwheel)
#   stateful_route-V.tar.gz                     Python sdist (builds from source, as today)
#   stateful-route-V.tgz                        npm package with the prebuilt linux-x64-gnu addon
#   stateful-route-c-V-linux-x86_64.tar.gz      header, .a, .so, pkg-config file, example.c
#   stateful-route-go-V.tar.gz                  the Go module as its release commit carries it
# and bindings/go/lib/linux_amd64/libstateful_route.a (+ lib/include/stateful_route.h), where
# the Go package's cgo flags find it without cargo (git-ignored; see README "Releasing").
# V is the workspace version (Cargo.toml); a package manifest that disagrees fails the build.
# Tools: maturin and auditwheel in a venv under target/dist-tools (from PyPI), the napi CLI
# that install.js fetches. Env: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
dist="$root/target/dist"
python=${PYTHON:-python3}

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "dist: no version in [workspace.package] of Cargo.toml" >&2; exit 1; }
node_version=$(node -p "require('./node/package.json').version")
if [ "$node_version" != "$version" ]; then
  echo "dist: node/package.json has version $node_version, the workspace $version" >&2
  exit 1
fi
if ! grep -q '^dynamic = \["version"\]' python/pyproject.toml; then
  echo "dist: python/pyproject.toml must take its version from Cargo (dynamic = [\"version\"])" >&2
  exit 1
fi
echo "--- stateful-route $version -> $dist"
rm -rf "$dist"
mkdir -p "$dist"

echo "--- release build of the C library"
cargo build --release --locked --quiet -p stateful-route-c

tools="$root/target/dist-tools/venv"
if ! "$tools/bin/maturin" --version >/dev/null 2>&1 || ! [ -x "$tools/bin/auditwheel" ]; then
  echo "--- maturin and auditwheel into $tools"
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet 'maturin>=1.9,<2' auditwheel
fi

echo "--- Python wheel (abi3, manylinux checked by maturin's auditwheel) and sdist"
# manylinux_2_34: the lowest tag maturin's check accepts for this build (linked against
# Debian 12's glibc 2.36, the pthread symbols are GLIBC_2.34); pip accepts it on glibc >= 2.34.
(cd python && "$tools/bin/maturin" build --quiet --release --strip --locked --auditwheel check \
  --features abi3 --compatibility manylinux_2_34 --out "$dist")
# (maturin sdist first looks for a Cargo.toml next to pyproject.toml and prints an error line
# when there is none; it then uses manifest-path. That line is dropped here.)
(cd python && "$tools/bin/maturin" sdist --out "$dist" 2>&1) |
  grep -v '^error: manifest path `Cargo.toml` does not exist$' || true
[ -n "$(ls "$dist"/stateful_route-*.tar.gz 2>/dev/null)" ] || { echo "dist: no sdist" >&2; exit 1; }
# The sdist's workspace has only core and bindings/python, so the copied Cargo.lock lists
# packages it no longer needs and `--locked` (pyproject.toml) would refuse it: prune those
# (offline: nothing is added or upgraded) and pack it again.
sdist=$(ls "$dist"/stateful_route-*.tar.gz)
sdist_stage="$root/target/dist-stage/sdist"
rm -rf "$sdist_stage"
mkdir -p "$sdist_stage"
tar -C "$sdist_stage" -xzf "$sdist"
(cd "$sdist_stage"/stateful_route-* && cargo metadata --offline --quiet --format-version 1 >/dev/null &&
  cargo metadata --locked --offline --quiet --format-version 1 >/dev/null)
tar -C "$sdist_stage" -czf "$sdist" "$(basename "$sdist" .tar.gz)"
rm -rf "$sdist_stage"
"$tools/bin/auditwheel" show "$dist"/*.whl

echo "--- npm package with the prebuilt addon (linux-x64-gnu)"
stage="$root/target/dist-stage"
rm -rf "$stage"
mkdir -p "$stage/npm/node/npm/linux-x64-gnu"
npm_pkg="$stage/npm/node"
STATEFUL_ROUTE_NODE_FROM_SOURCE=1 STATEFUL_ROUTE_NODE_OUT_DIR="$npm_pkg" node node/install.js
if ! diff -q node/index.d.ts "$npm_pkg/index.d.ts" >/dev/null; then
  echo "dist: node/index.d.ts is stale (make check-generated)" >&2
  exit 1
fi
mv "$npm_pkg/stateful-route.node" "$npm_pkg/npm/linux-x64-gnu/stateful-route.linux-x64-gnu.node"
strip --strip-debug "$npm_pkg/npm/linux-x64-gnu/stateful-route.linux-x64-gnu.node"
cp node/index.js node/index.mjs node/install.js node/platform.js "$npm_pkg/"
# The tarball's manifest: the napi CLI is only for source builds, which need a checkout anyway.
node -e '
  const fs = require("node:fs")
  const [src, dst, plat] = process.argv.slice(1)
  const pkg = JSON.parse(fs.readFileSync(src, "utf8"))
  delete pkg.dependencies
  delete pkg.devDependencies
  for (const s of ["test", "bench", "format", "format:check"]) delete pkg.scripts[s]
  fs.writeFileSync(dst, JSON.stringify(pkg, null, 2) + "\n")
  // napi-rs platform-package layout: npm/<triple>/package.json next to the addon.
  const p = {
    name: `${pkg.name}-linux-x64-gnu`, version: pkg.version, license: pkg.license,
    os: ["linux"], cpu: ["x64"], libc: ["glibc"],
    main: "stateful-route.linux-x64-gnu.node", files: ["stateful-route.linux-x64-gnu.node"],
  }
  fs.writeFileSync(plat, JSON.stringify(p, null, 2) + "\n")
' node/package.json "$npm_pkg/package.json" "$npm_pkg/npm/linux-x64-gnu/package.json"
(cd "$npm_pkg" && npm pack --quiet --pack-destination "$dist" >/dev/null)

echo "--- C package (header, static and shared library, pkg-config file, example)"
cname="stateful-route-c-$version-linux-x86_64"
cdir="$stage/$cname"
mkdir -p "$cdir/include" "$cdir/lib/pkgconfig" "$cdir/share/stateful-route"
cp include/stateful_route.h "$cdir/include/"
cp "$CARGO_TARGET_DIR/release/libstateful_route.a" "$CARGO_TARGET_DIR/release/libstateful_route.so" \
  "$cdir/lib/"
strip --strip-debug "$cdir/lib/libstateful_route.a" "$cdir/lib/libstateful_route.so"
cp tests/dist/example.c "$cdir/share/stateful-route/"
# Relocatable: the prefix is where the file lies. The rpath lets the example run unchanged;
# `pkg-config --static` links libstateful_route.a when the .so is removed.
cat >"$cdir/lib/pkgconfig/stateful-route.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: stateful-route
Description: Sticky, load-aware user-to-pod routing for stateful services (C API)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lstateful_route
Libs.private: -lm -ldl -lpthread
PC
tar -C "$stage" -czf "$dist/$cname.tar.gz" "$cname"

echo "--- Go: the static library where cgo finds it (bindings/go/lib/linux_amd64)"
golib=bindings/go/lib
mkdir -p "$golib/linux_amd64" "$golib/include"
cp "$cdir/lib/libstateful_route.a" "$golib/linux_amd64/"
cp include/stateful_route.h "$golib/include/"
gname="stateful-route-go-$version"
mkdir -p "$stage/$gname"
# Tests and the benchmark hooks (bench*.go/.c, built only with -tags srbench) stay out; the
# Prometheus collector module (its own go.mod, `replace`d by the package beside it) goes in.
(cd bindings/go && cp go.mod $(ls ./*.c ./*.go | grep -v -e '_test\.go$' -e '^\./bench') "$stage/$gname/" &&
  cp -r lib "$stage/$gname/" &&
  mkdir "$stage/$gname/promcollector" &&
  cp promcollector/go.mod promcollector/go.sum promcollector/promcollector.go "$stage/$gname/promcollector/")
tar -C "$stage" -czf "$dist/$gname.tar.gz" "$gname"
rm -rf "$stage"

echo "--- target/dist"
ls -l "$dist"
