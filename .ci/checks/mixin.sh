#!/usr/bin/env bash
# The monitoring mixin (mixin/): its jsonnet is formatted, the shipped rules and dashboards in
# alerts/ and dashboards/ are exactly what it renders and follow the mixin guidelines, and a
# non-default _config reaches every place it claims to (selectors, labels, overrides, dashboard
# uids and tags) and still gives rules promtool accepts.
#
# Tools, installed when missing (fast when present): go-jsonnet from PyPI `gojsonnet` in the venv
# target/peers/mixin (the reference implementation, the one mixtool embeds), Debian `jsonnet` for
# jsonnetfmt only (the gojsonnet wheel has no formatter), Debian `prometheus` for promtool. A tool
# that is still missing after that fails the check.
set -euo pipefail
cd "$(dirname "$0")/../.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

venv=target/peers/mixin
need_apt=()
command -v jsonnetfmt >/dev/null || need_apt+=(jsonnet)
command -v promtool >/dev/null || need_apt+=(prometheus)
# Debian's python3 creates a venv only with python3-venv (ensurepip) installed.
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3 python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi
if ! "$venv/bin/python" -c 'import _gojsonnet, yaml' 2>/dev/null; then
  echo "installing gojsonnet and PyYAML into $venv (pip)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check gojsonnet==0.22.0 PyYAML==6.0.4
fi
for tool in jsonnetfmt promtool "$venv/bin/python"; do
  command -v "$tool" >/dev/null || { echo "mixin.sh: FAIL: $tool is missing" >&2; exit 1; }
done
py="$venv/bin/python"

echo "--- jsonnetfmt --test mixin/*.libsonnet"
fmt=(-n 2 --max-blank-lines 2 --string-style s --comment-style s)
unformatted=()
for f in mixin/*.libsonnet; do
  jsonnetfmt --test "${fmt[@]}" "$f" || unformatted+=("$f")
done
if [ ${#unformatted[@]} -gt 0 ]; then
  echo "mixin.sh: FAIL: not formatted: ${unformatted[*]} (jsonnetfmt -i ${fmt[*]} FILE)" >&2
  exit 1
fi
echo "formatted: $(ls mixin/*.libsonnet | wc -l) files"

echo "--- mixin/render.py --check (alerts/ and dashboards/ are the rendering; guideline lint)"
"$py" mixin/render.py --check

echo "--- a non-default _config reaches the rules and dashboards"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$py" mixin/render.py --out "$out" --config '{
  apiTokenExporterSelector: "job=\"tokens\", cluster=\"prod\"",
  extraAlertLabels: { route: "tokens" },
  alertOverrides: { ApiTokenProbeFailing: { "for": "30m" } },
  runbookUrlPattern: "https://runbooks.example.com/%s",
  dashboardTags: ["tokens", "security"],
  dashboardUids: { overview: "tok-overview", detail: "tok-detail" },
  dashboardRefresh: "5m",
}'
promtool check rules "$out/prometheus_alerts.yaml"
"$py" - "$out" <<'EOF'
import json, sys, yaml
from pathlib import Path
out = Path(sys.argv[1])
rules = {r["alert"]: r for g in yaml.safe_load((out / "prometheus_alerts.yaml").read_text())["groups"] for r in g["rules"]}
problems = []
def want(ok, what):
    if not ok:
        problems.append(what)
want(rules["ApiTokenExporterDown"]["expr"] == 'up{job="tokens", cluster="prod"} == 0', "selector in ApiTokenExporterDown")
want(rules["ApiTokenExporterAbsent"]["expr"] == 'absent(up{job="tokens", cluster="prod"})', "selector in ApiTokenExporterAbsent")
want(all('job="api-token-exporter"' not in r["expr"] for r in rules.values()), "no default job selector left")
want(all(r["labels"].get("route") == "tokens" for r in rules.values()), "extraAlertLabels on every alert")
want(all(r["labels"]["severity"] in ("warning", "critical") for r in rules.values()), "severity kept next to extra labels")
want(rules["ApiTokenProbeFailing"]["for"] == "30m" and rules["ApiTokenInvalid"]["for"] == "10m", "alertOverrides on one alert only")
want(all(r["annotations"]["runbook_url"].count("https://runbooks.example.com/" + name.lower()) == 1 for name, r in rules.items()), "runbookUrlPattern")
ov = json.loads((out / "dashboards_out/api-token-overview.json").read_text())
de = json.loads((out / "dashboards_out/api-token-detail.json").read_text())
want((ov["uid"], de["uid"]) == ("tok-overview", "tok-detail"), "dashboard uids")
text = json.dumps(ov)
want("/d/tok-detail/" in text and "/d/api-token-detail/" not in text, "overview links to the detail dashboard by its new uid")
want(all(d["tags"] == ["tokens", "security"] and d["refresh"] == "5m" for d in (ov, de)), "dashboard tags and refresh")
want(all(l["tags"] == ["tokens", "security"] for d in (ov, de) for l in d["links"] if l["type"] == "dashboards"), "dashboard link menus follow the tags")
for p in problems:
    print(f"mixin.sh: FAIL: _config does not reach: {p}", file=sys.stderr)
print(f"_config checks: {11 - len(problems)} of 11 hold")
sys.exit(1 if problems else 0)
EOF
echo "mixin.sh: all checks passed"
