#!/usr/bin/env bash
# The Python binding's benchmark: python/bench.py against an extension built with the `bench`
# cargo feature (its hooks `_bench_noop`, `_bench_core_hits`, `_bench_core_new_users` are not in
# the shipped package). Makes a venv (default python/.venv-bench), installs redis-py and
# `./python` built by maturin with `--features bench`, then runs bench.py with the arguments
# given: `python/bench.sh [--redis URL] [--quick]`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
venv=${STATEFUL_ROUTE_BENCH_VENV:-$root/python/.venv-bench}
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip redis
echo "--- pip install ./python (maturin --features bench)" >&2
MATURIN_PEP517_ARGS="--features bench" \
  "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps ./python
exec "$venv/bin/python" python/bench.py "$@"
