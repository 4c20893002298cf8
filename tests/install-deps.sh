#!/usr/bin/env bash
# Installs what the test suites need and the machine lacks: Debian's redis-server (and
# redis-tools), pkg-config for the C package's check (tests/dist-check.sh), and chromium for
# the dashboard's browser test (core/tests/cli.rs). Python and
# Node build tools are installed per suite (a venv, npm install).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${need[*]} from Debian's packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
redis-server --version >&2
