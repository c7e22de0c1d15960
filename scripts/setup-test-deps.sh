#!/usr/bin/env bash
# Installs what the tests need beyond npm packages, once: Debian's mosquitto clients (the tests
# talk to Natter with mosquitto_pub/sub as users do) and redis-server (cluster tests). Node >= 22.18
# comes from scripts/node.sh.
set -euo pipefail

need=()
command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
# The cluster tests run a real Redis.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)

bash "$(cd "$(dirname "$0")" && pwd)/apt-install.sh" setup "${need[@]}"
