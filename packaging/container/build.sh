#!/usr/bin/env bash
# Builds the container image from packaging/container/Dockerfile with buildah:
#   packaging/container/build.sh [IMAGE]      default IMAGE: localhost/api-token-exporter:VERSION
# 1. the static release binary (packaging/build-static.sh; reused when up to date),
# 2. a staged build context under target/container/context (the binary without its debug
#    information, the host's Debian CA bundle, an empty state directory),
# 3. buildah bud, with the labels' version, revision and creation time taken from Cargo.toml
#    and the last commit, and every timestamp set to that commit's time, so the same commit
#    gives the same image.
# Needs buildah, binutils and ca-certificates (Debian packages); run as root or with rootless buildah.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
image=${1:-localhost/api-token-exporter:$version}
bundle=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$bundle" ]; then
    echo "build.sh: $bundle is missing: apt-get install ca-certificates" >&2
    exit 1
fi

bin=$(packaging/build-static.sh)

context=target/container/context
rm -rf "$context"
mkdir -p "$context/state"
# The release profile keeps line tables (about 48 MB of this binary); the image drops them and
# keeps the symbol table, so a backtrace still names functions.
strip --strip-debug -o "$context/api-token-exporter" "$bin"
cp "$bundle" "$context/ca-certificates.crt"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

buildah bud --quiet --isolation chroot --timestamp "$epoch" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
    -f packaging/container/Dockerfile -t "$image" "$context" >&2
echo "$image"
