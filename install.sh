#!/usr/bin/env bash
# The one install command of the README: the package with its dev tools, and what the
# test suite drives besides Python (Node Kue for the interop tests).
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -e '.[dev]'
# The dashboard's browser test drives Debian's Chromium (Playwright's own download cannot work here).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "install.sh: chromium is missing; install it (Debian: apt-get install chromium) for the browser test" >&2
  fi
fi
if [ -f tests/interop/node/package-lock.json ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error)
fi
