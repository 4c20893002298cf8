#!/usr/bin/env bash
# The Python suite, as a user would meet the package: a fresh venv, `pip install ./python`
# (maturin comes from PyPI through the build backend and builds bindings/python), then pytest
# against a real redis-server and the in-memory store, the stub check (mypy.stubtest) and the
# formatter check (ruff). Uses $STATEFUL_ROUTE_TEST_REDIS when set, else starts a redis-server.
# Env: PYTHON (interpreter, default python3), STATEFUL_ROUTE_PY_VENV (default python/.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python=${PYTHON:-python3}
venv=${STATEFUL_ROUTE_PY_VENV:-$root/python/.venv}

if [ -z "${STATEFUL_ROUTE_TEST_REDIS:-}" ]; then
  state=$(mktemp -d)
  eval "$(tests/redis-server.sh start "$state")"
  trap 'tests/redis-server.sh stop "$state"; rm -rf "$state"' EXIT
fi

echo "--- fresh venv in $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
echo "--- pip install ./python (builds the extension with maturin)" >&2
"$venv/bin/python" -m pip install --quiet ./python
# prometheus_client: for stateful_route.prometheus (an optional import of the package);
# pyyaml: the README's StatefulSet manifest is parsed by test_readme.py.
"$venv/bin/python" -m pip install --quiet pytest mypy ruff prometheus_client pyyaml

echo "--- ruff format --check python/" >&2
"$venv/bin/ruff" format --check --quiet python

echo "--- pytest (memory and $STATEFUL_ROUTE_TEST_REDIS)" >&2
# From the repository root, so `import stateful_route` is the installed package.
"$venv/bin/python" -m pytest -p no:cacheprovider python/tests
