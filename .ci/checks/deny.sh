#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml): licenses, banned or duplicate
# crates, sources (crates.io only), and RustSec advisories.
#
# The advisory database is a git repository on GitHub. Where GitHub cannot be reached (the
# project's own machines reach only the package registries) and no copy was fetched
# before, advisories CANNOT be checked: the script says so in capitals and goes on with the
# other checks, rather than pretend. With DENY_REQUIRE_ADVISORIES=1 (a CI that reaches
# GitHub) a missing database is a failure. A database that is present is always used, and
# an advisory found in it always fails the run.
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
# No fetch is attempted: the database lives on GitHub, which these machines must not be
# pointed at (they reach the package registries only). A copy placed in $db_dir beforehand
# (`cargo deny fetch db` where GitHub is reachable) is used, and any advisory in it fails.
db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if compgen -G "$db_dir/*/crates" >/dev/null; then
  echo "using the advisory database in $db_dir"
  cargo deny --offline check advisories
else
  echo "ADVISORIES NOT CHECKED: the RustSec advisory database cannot be fetched from this"
  echo "machine (it lives on GitHub) and no copy exists in $db_dir."
  echo "Run 'cargo deny fetch db' where GitHub is reachable, or set DENY_REQUIRE_ADVISORIES=1"
  echo "to make this a failure."
  if [ "${DENY_REQUIRE_ADVISORIES:-}" = 1 ]; then
    exit 1
  fi
fi
