#!/usr/bin/env bash
# Installs what the tests need beyond npm packages, once: Debian's mosquitto clients (the tests
# talk to Natter with mosquitto_pub/sub as users do), redis-server (cluster tests) and chromium
# (the web chat's browser test). Node >= 22.18 comes from scripts/node.sh.
set -euo pipefail

need=()
command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
# The cluster tests run a real Redis.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# docs/protocol.md's shell examples are run as written: curl, with jq to pick ids out of answers.
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
# The web chat is tested in a real headless browser, driven by playwright-core.
command -v chromium >/dev/null 2>&1 || need+=(chromium)

bash "$(cd "$(dirname "$0")" && pwd)/apt-install.sh" setup "${need[@]}"
