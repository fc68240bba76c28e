#!/usr/bin/env bash
# The crate names in Cargo.lock other than this project's own, one per line, in byte order:
# the list the advisory snapshot is cut for (refresh.sh) and checked against (deny.sh).
set -euo pipefail
lock="$(dirname "$0")/../../Cargo.lock"
awk '/^name = /{gsub(/"/, "", $3); print $3}' "$lock" | grep -vx api-token-exporter | LC_ALL=C sort -u
