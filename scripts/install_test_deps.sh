#!/usr/bin/env bash
# Installs difflab with its test dependencies (and Debian's chromium for the board's browser test).
# The test and lint tools and the peers the tests use are pinned, with their transitive
# dependencies, by requirements/dev-constraints.txt: the same versions on every machine and in CI.
# To move to newer releases on purpose: bash scripts/refresh_constraints.sh (see its header).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -c requirements/dev-constraints.txt -e ".[dev]"
# Peers whose declared dependencies would pull torchvision (see the file's header): without them.
python -m pip install -q --no-deps -c requirements/dev-constraints.txt -r requirements/no-deps-peers.txt
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the board browser test will fail" >&2
  fi
fi
