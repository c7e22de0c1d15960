#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (a MongoDB-wire server on SQLite) into .tools/ once, for the MongoDB
# store's tests. A plain `go install` of it panics at start (its build/version/version.txt is
# written by its release tooling), so the module is copied, that file written, and built.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v1.24.2
bin=".tools/ferretdb-$VERSION/ferretdb"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v go >/dev/null 2>&1 || { echo "setup: Go is needed to build FerretDB" >&2; exit 1; }
echo "setup: building FerretDB $VERSION (once, about two minutes)" >&2
dir=$(go mod download -json "github.com/FerretDB/FerretDB@$VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "setup: go mod download gave no directory for FerretDB" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
printf '%s' "$VERSION" > "$work/src/build/version/version.txt"
mkdir -p "$(dirname "$bin")"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$OLDPWD/$bin" ./cmd/ferretdb)
echo "$bin"
