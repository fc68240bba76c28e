#!/usr/bin/env bash
# Builds the one release binary that both the container image and the Debian package ship:
# glibc, statically linked (+crt-static). The explicit --target is what keeps RUSTFLAGS away
# from build scripts and proc-macros (with it absent, proc-macro crates fail to build), and it
# needs no rustup target beyond the host's. Cargo reuses an up-to-date binary, so a second
# call costs seconds. Prints the binary's path on standard output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=x86_64-unknown-linux-gnu
bin="target/$target/release/api-token-exporter"

# Exactly these flags: a different RUSTFLAGS would rebuild everything.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet \
    --target "$target" --bin api-token-exporter >&2

# The image has no libc to load, so a dynamic binary would not even start there.
description=$(file -b "$bin")
case "$description" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *)
        echo "build-static.sh: $bin is not statically linked: $description" >&2
        exit 1
        ;;
esac
echo "$root/$bin"
