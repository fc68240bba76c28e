#!/usr/bin/env bash
# The Helm chart (deploy/helm/api-token-exporter), checked offline by deploy/helm/check.py:
# lint, values schema, every ci/*-values.yaml rendered and validated (kubernetes-validate
# --strict, the Prometheus Operator models, --config.check on the rendered inventory and web
# config, promtool on the rendered PrometheusRule), the invalid-values fixtures refused with
# their messages, and deploy/kubernetes/statefulset.yaml equal to the chart's rendering
# (UPDATE_GOLDEN=1 rewrites it). Installs its tools by package name when missing; under
# CI=true a tool still missing afterwards is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/target/peers/helm/venv"
TOOLS="$ROOT/deploy/helm/tools"
start=$(date +%s)

need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v openssl >/dev/null || need_apt+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "helm.sh: installing ${need_apt[*]} (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Every PyPI package pinned in deploy/helm/tools/requirements.txt; the venv is rebuilt when
# that file changes.
REQS="$TOOLS/requirements.txt"
if ! "$VENV/bin/python" -c 'import helm_python, yaml' 2>/dev/null || [ ! -x "$VENV/bin/kubernetes-validate" ] \
  || ! cmp -s "$REQS" "$VENV/requirements.txt"; then
  echo "helm.sh: pip install -r deploy/helm/tools/requirements.txt (PyPI) into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/requirements.txt"
fi
if [ ! -d "$TOOLS/node_modules/@kubernetes-models/prometheus-operator" ] || [ "$TOOLS/package-lock.json" -nt "$TOOLS/node_modules" ]; then
  echo "helm.sh: npm ci in deploy/helm/tools (@kubernetes-models/prometheus-operator, js-yaml)"
  npm ci --silent --no-audit --no-fund --prefix "$TOOLS" >/dev/null
  touch "$TOOLS/node_modules"
fi

missing=0
for tool in promtool node openssl "$VENV/bin/kubernetes-validate"; do
  command -v "$tool" >/dev/null || { echo "helm.sh: missing tool: $tool" >&2; missing=1; }
done
[ -d "$TOOLS/node_modules/@kubernetes-models/prometheus-operator" ] || { echo "helm.sh: missing npm tools in $TOOLS" >&2; missing=1; }
if [ "$missing" = 1 ]; then
  # A missing tool is a failure in CI and outside it: the chart would go unchecked.
  exit 1
fi

# The exporter itself checks the rendered configs: build it, so a stale binary never judges a
# new config format. Built as `cargo test` builds it (dev-dependencies turn on tokio's
# test-util, and a plain `cargo build` would compile every crate on tokio a second time), so
# .ci/run's test step reuses this build instead of repeating it.
BIN="$ROOT/target/debug/api-token-exporter"
cargo test --quiet --locked --all-targets --no-run

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
write=()
[ "${UPDATE_GOLDEN:-}" = 1 ] && write=(--write)
# helm-python-sdk logs each symlink it follows at INFO; the chart's two are intended.
PATH="$VENV/bin:$PATH" ATE_BIN="$BIN" NODE_TOOLS="$TOOLS" \
  "$VENV/bin/python" "$ROOT/deploy/helm/check.py" "${write[@]}" "$work" 2> >(grep -v 'found symbolic link in path' >&2)
echo "helm.sh: done in $(( $(date +%s) - start )) s"
