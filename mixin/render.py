#!/usr/bin/env python3
"""Renders the api-token-exporter mixin with go-jsonnet (PyPI gojsonnet, module _gojsonnet).

  python3 mixin/render.py            write the shipped files from the mixin:
                                       alerts/api-token-exporter.rules.yml
                                       alerts/kubernetes/prometheusrule.yaml
                                       dashboards/api-token-overview.json, api-token-detail.json
  python3 mixin/render.py --check    fail if any of those differs from the rendering, or if the
                                     rendering breaks the mixin guidelines (mixtool lint's alert
                                     rules, dashboard title and uid)
  python3 mixin/render.py --out DIR [--config '{ apiTokenExporterSelector: "job=\\"tokens\\"" }']
                                     write prometheus_alerts.yaml, prometheus_rules.yaml and
                                     dashboards_out/*.json for your own _config
  python3 mixin/render.py --port-alert NAME
                                     print the jsonnet object of an alert that was added to the
                                     rules YAML by hand, to paste into mixin/alerts.libsonnet

The rules YAML is written by a small emitter here rather than std.manifestYamlDoc, so that each
alert keeps its explanatory comment (the hidden `comment::` field of the mixin), `expr` stays a
literal block and `description` a folded one. Every rendering is parsed back and must equal the
mixin's own JSON value, so the emitter cannot change what Prometheus reads.
"""

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import _gojsonnet
import yaml

MIXIN = Path(__file__).resolve().parent
ROOT = MIXIN.parent
RULES_FILE = "alerts/api-token-exporter.rules.yml"
PROMETHEUS_RULE_FILE = "alerts/kubernetes/prometheusrule.yaml"
DASHBOARDS_DIR = "dashboards"
WIDTH = 100

RULES_HEADER = """\
Prometheus alerting rules for api-token-exporter.

Generated from the mixin (mixin/alerts.libsonnet) by mixin/render.py: do not edit. Change the
mixin and run `python3 mixin/render.py`; `python3 mixin/render.py --check` (in
.ci/checks/mixin.sh) fails while this file differs from the rendering.
alerts/kubernetes/prometheusrule.yaml is its PrometheusRule twin, written by render.py too.
alerts/tests/*.test.yml hold the promtool unit tests; run them with
  promtool test rules alerts/tests/*.test.yml
"""

# The header of the PrometheusRule twin; tests/it/alerts.rs checks that its spec holds the rules
# file's groups and that promtool accepts them.
PROMETHEUS_RULE_HEADER = """\
# Generated from the mixin by mixin/render.py, with alerts/api-token-exporter.rules.yml: do not
# edit. Regenerate with: python3 mixin/render.py
# Prometheus Operator selects rules by label (its ruleSelector): add the labels yours
# expects under metadata.labels when you apply this (for example with kustomize).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: api-token-exporter
  labels:
    app.kubernetes.io/name: api-token-exporter
    app.kubernetes.io/component: alerting-rules
spec:
"""

RULE_KEYS = ["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]
ANNOTATION_ORDER = ["summary", "description", "runbook_url", "dashboard_url"]


def evaluate(config: str) -> dict:
    """The mixin's alerts, rules, dashboards and alert comments as one JSON value."""
    snippet = f"""
local m = (import 'mixin.libsonnet') + {{ _config+:: {config} }};
{{
  alerts: m.prometheusAlerts,
  rules: m.prometheusRules,
  dashboards: m.grafanaDashboards,
  header: std.get(m.prometheusAlerts, 'comment', ''),
  comments: [[std.get(r, 'comment', '') for r in g.rules] for g in m.prometheusAlerts.groups],
}}
"""
    return json.loads(_gojsonnet.evaluate_snippet("render", snippet, jpathdir=[str(MIXIN)]))


def comment(text: str, indent: str) -> str:
    return "".join(f"{indent}# {line}".rstrip() + "\n" for line in text.rstrip("\n").split("\n"))


def scalar(value) -> str:
    """A single-line scalar: plain when YAML reads it back as the same string, else quoted."""
    if (
        isinstance(value, str)
        and value == value.strip()
        and value[:1] not in ("", *"-?:,[]{}#&*!|>'\"%@`")
        and ": " not in value
        and " #" not in value
        and yaml.safe_load(value) == value
    ):
        return value
    return json.dumps(value)


OPENS_BLOCK = re.compile(r"\{\{-?\s*(with|if|range|block|define)\b")
ENDS_BLOCK = re.compile(r"\{\{-?\s*end\b")


def words(text: str) -> list[str]:
    """Splits at single spaces, but never inside a {{ ... }} action nor inside a
    {{ with/if/range }} ... {{ end }} block, so a template reads as one piece."""
    out, cur, actions, blocks, i = [], "", 0, 0, 0
    while i < len(text):
        if text.startswith("{{", i):
            if OPENS_BLOCK.match(text, i):
                blocks += 1
            elif ENDS_BLOCK.match(text, i) and blocks:
                blocks -= 1
            actions, cur, i = actions + 1, cur + "{{", i + 2
        elif text.startswith("}}", i) and actions:
            actions, cur, i = actions - 1, cur + "}}", i + 2
        elif text[i] == " " and actions == 0 and blocks == 0:
            out, cur, i = out + [cur], "", i + 1
        else:
            cur, i = cur + text[i], i + 1
    return out + [cur]


def block(key: str, value: str, indent: str, fold: bool = False) -> str:
    """A multi-line value (`expr`) as a literal block; an annotation (`fold`) quoted, or folded
    when it is long; anything else on one line, plain where YAML allows."""
    if not isinstance(value, str):
        return f"{indent}{key}: {json.dumps(value)}\n"
    # Continuation lines sit two columns right of the key, also after a list item's "- ".
    inner = " " * len(indent) + "  "
    if "\n" in value:
        # Clip ("|") keeps one final newline, strip ("|-") none; leading blanks and several final
        # newlines would need indicators, so such values are quoted instead.
        if value.startswith((" ", "\n")) or value.endswith("\n\n"):
            return f"{indent}{key}: {json.dumps(value)}\n"
        body, chomp = (value[:-1], "") if value.endswith("\n") else (value, "-")
        lines = "".join(f"{inner}{line}".rstrip() + "\n" if line else "\n" for line in body.split("\n"))
        return f"{indent}{key}: |{chomp}\n{lines}"
    if not fold:
        return f"{indent}{key}: {scalar(value)}\n"
    if len(indent) + len(key) + 2 + len(json.dumps(value)) <= WIDTH or key in ("summary", "runbook_url"):
        return f"{indent}{key}: {json.dumps(value)}\n"
    parts = words(value)
    if value != value.strip() or "" in parts:
        return f"{indent}{key}: {json.dumps(value)}\n"
    lines, line = [], ""
    for word in parts:
        if line and len(inner) + len(line) + 1 + len(word) > WIDTH:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return f"{indent}{key}: >-\n" + "".join(f"{inner}{l}\n" for l in lines)


def rules_yaml(alerts: dict, header: str, comments: list[list[str]]) -> str:
    out = [comment(RULES_HEADER + ("\n" + header if header else ""), "")]
    out.append("groups:\n")
    for gi, group in enumerate(alerts["groups"]):
        if gi:
            out.append("\n")
        extra = sorted(set(group) - {"name", "rules"})
        if extra:
            raise SystemExit(f"group {group['name']}: render.py does not know the keys {extra}")
        out.append(f"  - name: {scalar(group['name'])}\n    rules:{'' if group['rules'] else ' []'}\n")
        for ri, rule in enumerate(group["rules"]):
            if ri:
                out.append("\n")
            unknown = sorted(set(rule) - set(RULE_KEYS))
            if unknown:
                raise SystemExit(f"{rule.get('alert')}: render.py does not know the keys {unknown}")
            if comments[gi][ri]:
                out.append(comment(comments[gi][ri], "      "))
            first = True
            for key in (k for k in RULE_KEYS if k in rule):
                indent = "      - " if first else "        "
                first = False
                value = rule[key]
                if isinstance(value, dict):
                    out.append(f"{indent}{key}:\n")
                    order = ANNOTATION_ORDER if key == "annotations" else ["severity"]
                    names = [k for k in order if k in value] + sorted(set(value) - set(order))
                    for name in names:
                        out.append(block(name, value[name], "          ", fold=key == "annotations"))
                else:
                    out.append(block(key, value, indent))
    return "".join(out)


def prometheus_rule(rules_text: str) -> str:
    body = "".join(("  " + line if line else "") + "\n" for line in rules_text.split("\n")[:-1])
    return PROMETHEUS_RULE_HEADER + body


def dashboard_json(dashboard: dict) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def render(config: str) -> tuple[dict[str, str], dict]:
    value = evaluate(config)
    rules_text = rules_yaml(value["alerts"], value["header"], value["comments"])
    if yaml.safe_load(rules_text) != value["alerts"]:
        raise SystemExit("render.py: the rules YAML does not read back as the mixin's alerts")
    files = {
        RULES_FILE: rules_text,
        PROMETHEUS_RULE_FILE: prometheus_rule(rules_text),
    }
    for name, dashboard in sorted(value["dashboards"].items()):
        text = dashboard_json(dashboard)
        if json.loads(text) != dashboard:
            raise SystemExit(f"render.py: {name} does not read back as the mixin's dashboard")
        files[f"{DASHBOARDS_DIR}/{name}"] = text
    return files, value


def jsonnet_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def jsonnet_block(text: str, indent: str) -> str:
    lines = text.rstrip("\n").split("\n")
    return "|||\n" + "".join(f"{indent}  {line}".rstrip() + "\n" for line in lines) + f"{indent}|||"


def port_alert(name: str) -> str:
    """The jsonnet object for an alert that exists only in the committed rules YAML (merged there
    by hand), to paste into its group in mixin/alerts.libsonnet; its comment block comes along."""
    source = (ROOT / RULES_FILE).read_text()
    rules = {r["alert"]: (g["name"], r) for g in yaml.safe_load(source)["groups"] for r in g["rules"]}
    if name not in rules:
        raise SystemExit(f"render.py: {RULES_FILE} has no alert {name}")
    group, rule = rules[name]
    defaults = json.loads(_gojsonnet.evaluate_snippet(
        "defaults", "(import 'mixin.libsonnet')._config", jpathdir=[str(MIXIN)]))
    selector = defaults["apiTokenExporterSelector"]
    runbook = defaults["runbookUrlPattern"] % name.lower()
    lines = source.split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip() == f"- alert: {name}")
    comment_lines = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        comment_lines.insert(0, line.strip()[2:] if line.strip().startswith("# ") else line.strip()[1:])
    out = [f"// In group {group!r} of mixin/alerts.libsonnet:", "{"]
    if comment_lines:
        out.append(f"  comment:: {jsonnet_block(chr(10).join(comment_lines), '  ')},")
    for key in (k for k in RULE_KEYS if k in rule):
        value = rule[key]
        field = "'for'" if key == "for" else key
        if isinstance(value, dict):
            out.append(f"  {field}: {{")
            for k, v in value.items():
                if k == "description" and "\n" not in v and len(v) > 80:
                    wrapped, line = [], ""
                    for word in words(v):
                        if line and len(line) + 1 + len(word) > WIDTH - 8:
                            wrapped, line = wrapped + [line], word
                        else:
                            line = f"{line} {word}" if line else word
                    out.append(f"    {k}: fold({jsonnet_block(chr(10).join(wrapped + [line]), '    ')}),")
                elif k == "runbook_url" and v == runbook:
                    out.append(f"    {k}: runbook({jsonnet_string(name)}),")
                elif k == "runbook_url" and runbook in v and "%" not in v:
                    pattern = jsonnet_string(v.replace(runbook, "%s"))
                    out.append(f"    {k}: {pattern} % runbook({jsonnet_string(name)}),")
                elif "\n" in v:
                    out.append(f"    {k}: {jsonnet_block(v, '    ')},")
                else:
                    out.append(f"    {k}: {jsonnet_string(v)},")
            out.append("  },")
        elif key == "expr" and selector in value and "%" not in value:
            templated = value.replace(selector, "%(apiTokenExporterSelector)s")
            text = jsonnet_block(templated, "  ") if "\n" in value else jsonnet_string(templated)
            out.append(f"  {field}: {text} % c,")
        elif "\n" in value:
            out.append(f"  {field}: {jsonnet_block(value, '  ')},")
        else:
            out.append(f"  {field}: {jsonnet_string(value)},")
    out.append("},")
    return "\n".join(out) + "\n"


CAMEL = re.compile(r"^([A-Z]+[a-z0-9]+)+$")
TEMPLATE = re.compile(r"\{\{.+}\}")
SENTENCE = re.compile(r"^[A-Z].+\.$")


def lint(value: dict) -> list[str]:
    """mixtool lint's alert guidelines (pkg/mixer/lint.go) and its dashboard title/uid checks."""
    errors = []
    for group in value["alerts"]["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert", "")
            annotations = rule.get("annotations", {})
            if not CAMEL.match(name):
                errors.append(f"[alert-name-camelcase] {name}")
            if rule.get("labels", {}).get("severity") not in ("warning", "critical", "info"):
                errors.append(f"[alert-severity-rule] {name}: severity must be warning, critical or info")
            description = annotations.get("description")
            if description is None:
                errors.append(f"[alert-description-missing-rule] {name}")
            elif not TEMPLATE.search(description):
                errors.append(f"[alert-description-templating] {name}: description must use templates")
            summary = annotations.get("summary")
            if summary is None:
                errors.append(f"[alert-summary-missing-rule] {name}")
            else:
                if TEMPLATE.search(summary):
                    errors.append(f"[alert-summary-templating] {name}: summary must be static: {summary!r}")
                if not SENTENCE.match(summary):
                    errors.append(f"[alert-summary-style] {name}: summary must be a sentence: {summary!r}")
    uids = {}
    for name, dashboard in value["dashboards"].items():
        if not dashboard.get("title"):
            errors.append(f"dashboard has no title: {name}")
        if not dashboard.get("uid"):
            errors.append(f"dashboard has no uid: {name}")
        elif dashboard["uid"] in uids:
            errors.append(f"dashboards {uids[dashboard['uid']]} and {name} share uid {dashboard['uid']}")
        uids[dashboard.get("uid")] = name
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare the committed files with the rendering")
    mode.add_argument("--out", type=Path, help="write the mixin's outputs for --config here")
    mode.add_argument("--port-alert", metavar="NAME", help="print the jsonnet for an alert found only in the committed rules YAML")
    parser.add_argument("--config", default="{}", help="a jsonnet object merged into _config")
    args = parser.parse_args()
    if args.port_alert:
        sys.stdout.write(port_alert(args.port_alert))
        return 0
    if args.config != "{}" and not args.out:
        parser.error("--config changes the rendering, so it needs --out (the shipped files use the defaults)")

    files, value = render(args.config)
    errors = lint(value)
    for error in errors:
        print(f"render.py: lint: {error}", file=sys.stderr)

    if args.out:
        out = args.out
        (out / "dashboards_out").mkdir(parents=True, exist_ok=True)
        (out / "prometheus_alerts.yaml").write_text(files[RULES_FILE])
        (out / "prometheus_rules.yaml").write_text(
            yaml.safe_dump(value["rules"], sort_keys=False) if value["rules"]["groups"] else "groups: []\n"
        )
        for name, dashboard in value["dashboards"].items():
            (out / "dashboards_out" / name).write_text(dashboard_json(dashboard))
        print(f"render.py: wrote {out}/prometheus_alerts.yaml, prometheus_rules.yaml, dashboards_out/")
        return 1 if errors else 0

    stale = []
    for rel, text in files.items():
        path = ROOT / rel
        have = path.read_text() if path.exists() else ""
        if have == text:
            continue
        if args.check:
            stale.append(rel)
            diff = difflib.unified_diff(have.splitlines(), text.splitlines(), f"{rel} (committed)", f"{rel} (rendered)", lineterm="", n=1)
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"render.py: wrote {rel}")
    alerts = sum(len(g["rules"]) for g in value["alerts"]["groups"])
    if args.check:
        print(f"render.py: {len(files)} files compared ({alerts} alerts, {len(value['dashboards'])} dashboards), "
              f"{len(stale)} differ, {len(errors)} lint errors")
        if stale:
            print(f"render.py: {', '.join(stale)} differ from the mixin's rendering: change mixin/ "
                  "instead and run python3 mixin/render.py", file=sys.stderr)
    return 1 if stale or errors else 0


if __name__ == "__main__":
    sys.exit(main())
