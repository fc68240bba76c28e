#!/usr/bin/env bash
# Checks the bundled alert rules and dashboards with their real tools. Called by .ci/run; installs
# nothing itself. It needs on PATH: promtool and amtool (Debian packages prometheus and
# prometheus-alertmanager) and node, with `npm ci --prefix tests/peers/grafana` done.
# Runs every check, reports each, and exits non-zero if any failed.
set -uo pipefail
# The repository root is the nearest folder above this script with a Cargo.toml, so the script
# works from .ci/ and from .ci/checks/ alike.
root=$(cd "$(dirname "$0")" && pwd)
while [ ! -f "$root/Cargo.toml" ]; do
    [ "$root" = / ] && { echo "alerts.sh: no Cargo.toml above $0" >&2; exit 1; }
    root=$(dirname "$root")
done
cd "$root"

passed=0
failed=0
check() {
    local name=$1
    shift
    echo "--- alerts.sh: $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "alerts.sh: FAILED: $name" >&2
        failed=$((failed + 1))
    fi
}

for tool in promtool amtool node; do
    if ! command -v "$tool" >/dev/null; then
        echo "alerts.sh: $tool is not installed (apt-get install -y --no-install-recommends prometheus prometheus-alertmanager nodejs npm)" >&2
        exit 1
    fi
done
if [ ! -d tests/peers/grafana/node_modules/@grafana/schema ]; then
    echo "alerts.sh: run npm ci --prefix tests/peers/grafana first" >&2
    exit 1
fi

check "promtool check rules" promtool check rules alerts/api-token-exporter.rules.yml
check "promtool test rules" promtool test rules alerts/tests/*.test.yml
check "amtool check-config (example)" amtool check-config alerts/alertmanager.example.yml
check "promtool check config (scrape example)" promtool check config dashboards/prometheus-scrape.example.yml
check "dashboard schema check" node tests/peers/grafana/check-dashboards.mjs

echo "alerts.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
