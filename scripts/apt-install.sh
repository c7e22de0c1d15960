#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: installs Debian packages with apt, once, for the test setup and
# the benchmark. WHO names the caller in its messages.
set -euo pipefail
who=$1
shift
[ $# -gt 0 ] || exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: please install $* (no apt-get here)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "$who: installing $* with apt" >&2
export DEBIAN_FRONTEND=noninteractive
# An install from the cached lists first; refresh them only if that fails.
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
