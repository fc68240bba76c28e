#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml): licenses, banned or duplicate
# crates, sources (crates.io only), and RustSec advisories.
#
# The advisory database is a git repository on GitHub, which the project's machines cannot
# reach (they reach only the package registries). So the advisories are checked against, in
# order: a full copy already fetched into $CARGO_HOME/advisory-dbs (`cargo deny fetch db`
# where GitHub is reachable), else the snapshot committed in .ci/advisory-db (the advisories
# of every crate in Cargo.lock, see its README.md). Either way an advisory fails the run; a
# crate the snapshot was not cut for fails it too, until the snapshot is refreshed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing cargo-deny (cargo install --locked cargo-deny; a few minutes, once per machine)"
  cargo install --locked --quiet cargo-deny
fi
cargo deny --version

echo "--- licenses, bans, sources"
cargo deny --log-level error check licenses bans sources

echo "--- advisories"
db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if compgen -G "$db_dir/*/crates" >/dev/null; then
  echo "using the full advisory database in $db_dir"
  cargo deny --offline check advisories
  exit 0
fi

snapshot=.ci/advisory-db
echo "using the advisory snapshot in $snapshot (no full database in $db_dir)"
# 1. The snapshot must cover every crate in the lock file: a crate it was not cut for may
#    have advisories the snapshot does not hold.
#    (Byte order for comm, as both lists are written: a locale's order would differ.)
missing=$(LC_ALL=C comm -23 <("$snapshot/lock-crates.sh") "$snapshot/crates.txt")
if [ -n "$missing" ]; then
  echo "FAIL: the advisory snapshot was not cut for these crates in Cargo.lock:"
  echo "$missing" | sed 's/^/  /'
  echo "Refresh it: .ci/advisory-db/refresh.sh PATH_TO_AN_ADVISORY_DB_CHECKOUT"
  exit 1
fi
# 2. Its age, said every run: it is only as new as the copy it was read from.
newest=$(sed -n 's/^newest: //p' "$snapshot/README.md")
age=$(( ( $(date +%s) - $(date -d "$newest" +%s) ) / 86400 ))
echo "snapshot: advisories up to $newest ($age days old), $(find "$snapshot/crates" -name '*.md' | wc -l) files, $(wc -l < "$snapshot/crates.txt") crates"
if [ "$age" -gt 90 ]; then
  echo "WARNING: the advisory snapshot is more than 90 days old; refresh it."
fi
# 3. cargo-deny reads a database from a git checkout under its db-path: make one.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#^\[advisories\]#[advisories]\ndb-path = \"$work/dbs\"#" deny.toml > "$work/deny.toml"
# The checkout's directory name is a hash of the database URL: ask cargo-deny for it (this
# run fails, there being no database yet; only its log line is wanted).
db=$( (cargo deny --log-level debug --offline --config "$work/deny.toml" check advisories 2>&1 || true) \
  | sed -n "s/.*Opening advisory database at '\(.*\)'.*/\1/p" | head -1)
if [ -z "$db" ]; then
  echo "FAIL: could not learn where cargo-deny looks for its advisory database"
  exit 1
fi
mkdir -p "$db"
cp -r "$snapshot/crates" "$db/"
git -C "$db" init -q
git -C "$db" add -A
GIT_COMMITTER_DATE="$newest 00:00:00 +0000" git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost \
  commit -q --date="$newest 00:00:00 +0000" -m "advisory snapshot up to $newest"
# 4. Proof that the snapshot is read and matched: without deny.toml's ignore list the one
#    known advisory (RUSTSEC-2023-0071, rsa) must be reported.
sed '/^ignore = \[/,/^\]/d' "$work/deny.toml" > "$work/deny-no-ignores.toml"
if cargo deny --offline --config "$work/deny-no-ignores.toml" check advisories > "$work/canary.txt" 2>&1 \
  || ! grep -q 'RUSTSEC-2023-0071' "$work/canary.txt"; then
  cat "$work/canary.txt"
  echo "FAIL: with its ignore list removed, the check did not report RUSTSEC-2023-0071: the snapshot is not being read"
  exit 1
fi
echo "canary: RUSTSEC-2023-0071 reported when not ignored"
# 5. The check itself.
cargo deny --offline --config "$work/deny.toml" check advisories
