#!/usr/bin/env bash
# Builds the Debian package with cargo-deb from the static release binary that the container
# image ships too (packaging/build-static.sh; reused when up to date), plus a man page made by
# help2man from the binary's --help, so it cannot drift from the flags. Prints the .deb's path.
# Needs cargo-deb (`cargo install --locked cargo-deb`), help2man and gzip.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=x86_64-unknown-linux-gnu

bin=$(packaging/build-static.sh)

# dpkg and lintian read the changelog's first entry as the package's version.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if ! head -n 1 packaging/debian/changelog | grep -qF "api-token-exporter ($version-"; then
    echo "build.sh: packaging/debian/changelog has no entry for $version on top" >&2
    exit 1
fi

extra=target/debian-extra
mkdir -p "$extra"
help2man --no-info --no-discard-stderr --section=1 \
    --name="Prometheus exporter that checks API tokens at their providers" \
    --output="$extra/api-token-exporter.1" "$bin"
gzip -9nf "$extra/api-token-exporter.1"

# --no-build: the binary above is the one to ship; cargo-deb would otherwise build a dynamic
# one. --strip: Debian ships binaries without debug information (the release profile keeps
# line tables, which cargo-deb would otherwise leave in). --fast: the package is packed again
# below, so its first compression need not be tight.
out=target/debian-extra/deb
rm -rf "$out"
cargo deb --no-build --strip --fast --target "$target" --output "$out/" >"$extra/cargo-deb.log" 2>&1 ||
    { cat "$extra/cargo-deb.log" >&2; exit 1; }
debs=("$out"/*.deb)
if [ ${#debs[@]} != 1 ] || [ ! -f "${debs[0]}" ]; then
    echo "build.sh: cargo deb made no single package" >&2
    exit 1
fi
deb=${debs[0]}

# cargo-deb writes no DEBIAN/md5sums, which `dpkg --verify` and debsums check installed files
# against: unpack, add it, and pack again as dpkg-deb packs any Debian package.
tree=$extra/tree
rm -rf "$tree"
dpkg-deb -R "$deb" "$tree"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$tree/DEBIAN/md5sums"
chmod 0644 "$tree/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
rm -rf "$tree"
echo "$root/$deb"
