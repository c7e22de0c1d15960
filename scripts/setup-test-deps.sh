#!/usr/bin/env bash
# Installs what the tests need beyond npm packages, once: Debian's mosquitto clients (the tests
# talk to Natter with mosquitto_pub/sub as users do) and redis-server (cluster tests). Node >= 22.18
# comes from scripts/node.sh.
set -euo pipefail

need=()
command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
# The cluster tests run a real Redis.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install ${need[*]} (no apt-get here)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]} with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  # An install from the cached lists first; refresh them only if that fails.
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  }
fi
