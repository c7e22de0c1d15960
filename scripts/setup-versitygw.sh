#!/usr/bin/env bash
# Builds versitygw v1.7.0 (an S3 gateway that checks SigV4 signatures and checksums) into .tools/
# once, for the S3 media store's tests. Unlike FerretDB, a plain `go install` of it works.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v1.7.0
dir=".tools/versitygw-$VERSION"
bin="$dir/versitygw"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v go >/dev/null 2>&1 || { echo "setup: Go is needed to build versitygw" >&2; exit 1; }
echo "setup: building versitygw $VERSION (once, about two minutes)" >&2
mkdir -p "$dir"
GOBIN="$PWD/$dir" CGO_ENABLED=0 go install -trimpath "github.com/versity/versitygw/cmd/versitygw@$VERSION"
echo "$bin"
