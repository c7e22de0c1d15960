#!/usr/bin/env bash
# The one test command (npm test): installs what the tests need, then lint, typecheck and every
# test, against real servers and real clients on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
bash scripts/setup-ferretdb.sh >/dev/null
bash scripts/setup-versitygw.sh >/dev/null
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "test: node $(sh scripts/node.sh --version)"

npm run -s lint
npm run -s typecheck
files=$(find test -name '*.test.ts' | sort)
# The watchdog passes the runner's output through; if it goes quiet for 7 minutes (no test may take
# more than 2) it prints what is stuck and kills it, so a hang fails in minutes with its cause.
# No --test-force-exit: its process.exit() can deadlock Node at exit (docs/decisions.md, "A watchdog
# around the test run"), and a file that does not end by itself leaks a handle: a bug to see.
node_bin=$(sh scripts/node.sh --print-path)
# shellcheck disable=SC2086
exec "$node_bin" scripts/test-watchdog.ts --quiet=420 --limit=3000 -- \
  "$node_bin" --test --test-reporter=spec --test-timeout=120000 $files
