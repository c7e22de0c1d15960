#!/usr/bin/env bash
# npm run bench / bench:full: installs mosquitto (Debian) when missing, then runs bench/run.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench: installing mosquitto with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends mosquitto >/dev/null 2>&1 || {
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
  }
fi
[ -d node_modules/aedes ] || npm ci --no-audit --no-fund
exec sh scripts/node.sh --disable-warning=ExperimentalWarning bench/run.ts "$@"
