#!/usr/bin/env bash
# The one install command of the README: the package with its dev tools, and what the
# test suite drives besides Python (Node Kue for the interop tests).
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e '.[dev]'
if [ -f tests/interop/node/package-lock.json ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error)
fi
