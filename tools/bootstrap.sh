#!/usr/bin/env bash
# Set up everything geomask needs on a fresh Debian machine: system packages, .venv, Python packages.
# Idempotent and quick when nothing changed.  Used by `make setup` (and so by `make demo` / `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# 1. Debian packages: ABC (synthesis recipes), iverilog (pyverilog's preprocessor), libusb (open3d).
need=()
command -v berkeley-abc >/dev/null 2>&1 || need+=(berkeley-abc)
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
[ -e /usr/lib/x86_64-linux-gnu/libusb-1.0.so.0 ] || [ -e /usr/lib/aarch64-linux-gnu/libusb-1.0.so.0 ] \
  || ldconfig -p 2>/dev/null | grep -q libusb-1.0.so.0 || need+=(libusb-1.0-0)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. The virtual environment; torch pinned first (a looser pin would pull a multi-GB CUDA build).
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
STAMP="$VENV/.geomask-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,scans,ray,ripp]"
  touch "$STAMP"
fi
echo "bootstrap: ready ($VENV)"
