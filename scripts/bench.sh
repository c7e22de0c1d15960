#!/usr/bin/env bash
# npm run bench / bench:full: installs mosquitto and redis-server (Debian) when missing, then runs
# bench/run.ts (which builds FerretDB and versitygw into .tools/ for its MongoDB and cluster parts).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
# The cluster part runs three Natter nodes on a real Redis.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
bash scripts/apt-install.sh bench "${need[@]}"
[ -d node_modules/aedes ] || npm ci --no-audit --no-fund
exec sh scripts/node.sh --disable-warning=ExperimentalWarning bench/run.ts "$@"
