#!/usr/bin/env bash
# Rebuilds the advisory snapshot from a checkout of rustsec/advisory-db: the advisories of
# every crate in Cargo.lock, the crate list, and the date of the newest advisory in the
# checkout. Usage: .ci/advisory-db/refresh.sh PATH_TO_ADVISORY_DB_CHECKOUT
set -euo pipefail
src=${1:?usage: refresh.sh PATH_TO_ADVISORY_DB_CHECKOUT}
[ -d "$src/crates" ] || { echo "$src has no crates/ directory: not an advisory-db checkout"; exit 1; }
cd "$(dirname "$0")"
./lock-crates.sh > crates.txt
rm -rf crates
while read -r name; do
  if [ -d "$src/crates/$name" ]; then
    mkdir -p "crates/$name"
    find "$src/crates/$name" -maxdepth 1 -name 'RUSTSEC-20*.md' -exec cp {} "crates/$name/" \;
  fi
done < crates.txt
newest=$(grep -rhoE '^date = "[0-9-]+"' "$src/crates" | sort | tail -1 | grep -oE '[0-9]{4}-[0-9-]+')
sed -i "s/^newest: .*/newest: $newest/" README.md
echo "snapshot: $(find crates -name '*.md' | wc -l) advisories for $(wc -l < crates.txt) crates, newest $newest"
