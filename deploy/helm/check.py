"""Checks the Helm chart offline and keeps deploy/kubernetes/ generated from it.

Run by .ci/checks/helm.sh inside a venv holding helm-python-sdk, kubernetes-validate and
PyYAML. Usage: check.py [--write] WORKDIR
  1. helm lint --strict, with the defaults and with every ci/*-values.yaml;
  2. every ci/*-values.yaml: schema, render, kubernetes-validate --strict (the chart's oldest
     and the newest Kubernetes), the Prometheus Operator models, the StatefulSet's own
     invariants, the rendered inventory and web config through `--config.check`, and the
     rules of a rendered PrometheusRule through `promtool check rules` and the project's
     `promtool test rules` cases;
  3. the packaged chart (.tgz, symlinks resolved) renders as the directory does;
     every tests/invalid/*.yaml fails to render with each line of its .expect.txt;
  4. deploy/kubernetes/statefulset.yaml equals the rendering of ci/golden-values.yaml
     (--write or UPDATE_GOLDEN=1 rewrites it).
Environment: ATE_BIN (the exporter binary), NODE_TOOLS (deploy/helm/tools with node_modules).
"""

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/api-token-exporter"
GOLDEN = ROOT / "deploy/kubernetes/statefulset.yaml"
RELEASE, NAMESPACE = "api-token-exporter", "monitoring"
# The chart's kubeVersion floor (the pod-index label) and the newest schema available.
KUBE_VERSIONS = ["1.28.0", "1.37.0"]
# Install order, as Helm applies them: what a kind refers to comes before it.
KIND_ORDER = ["ServiceAccount", "Secret", "ConfigMap", "ClusterRole", "ClusterRoleBinding",
              "Role", "RoleBinding", "Service", "StatefulSet", "PodMonitor", "ServiceMonitor",
              "PrometheusRule"]

failures = []


def fail(what):
    failures.append(what)
    print(f"FAIL: {what}")


def run(cmd, **kw):
    """Runs a tool; returns (ok, output)."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def render(values, chart_path=CHART):
    """The chart's manifests for these values, as {template: text}, NOTES.txt and empty ones left out."""
    with helm.Chart.load(chart_path) as chart:
        chart.validate_schema(values)
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return {k: v for k, v in sorted(out.items()) if not k.endswith("NOTES.txt") and any(yaml.safe_load_all(v))}


def documents(rendered):
    docs = [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
    return sorted(docs, key=lambda d: KIND_ORDER.index(d["kind"]))


def golden_text(rendered):
    parts = [(documents({k: v})[0]["kind"], k, v) for k, v in rendered.items()]
    parts.sort(key=lambda p: KIND_ORDER.index(p[0]))
    head = ("# Generated from the Helm chart deploy/helm/api-token-exporter with its\n"
            "# ci/golden-values.yaml by deploy/helm/check.py: do not edit; change the chart or\n"
            "# those values and run `deploy/helm/check.py --write` (or UPDATE_GOLDEN=1 .ci/checks/helm.sh).\n"
            "# Three shards of one inventory, state on an emptyDir, a PodMonitor. Apply with:\n"
            "#   kubectl -n monitoring create secret generic api-token-exporter-tokens \\\n"
            "#     --from-file=ci-deploy=./ci-deploy --from-file=release-bot=./release-bot\n"
            "#   kubectl -n monitoring apply -f deploy/kubernetes/statefulset.yaml\n")
    body = "".join(f"---\n# Source: {name}\n{text.strip()}\n" for _, name, text in parts)
    return head + body


def check_statefulset(name, docs):
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c["args"]
    flag = lambda f: next((a.split("=", 1)[1] for a in args if a.startswith(f + "=")), None)
    if flag("--shard.count") != str(sts["spec"]["replicas"]):
        fail(f"{name}: replicas {sts['spec']['replicas']} but --shard.count={flag('--shard.count')}")
    if flag("--shard.index") != "$(POD_INDEX)":
        fail(f"{name}: --shard.index is not $(POD_INDEX)")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"] for v in pod.get("volumes", [])}
    volumes |= {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    state = mounts.get(flag("--storage.path"))
    if not state or state.get("readOnly"):
        fail(f"{name}: nothing writable is mounted at --storage.path={flag('--storage.path')}")
    for m in c["volumeMounts"]:
        if m["name"] not in volumes:
            fail(f"{name}: volumeMount {m['name']} has no volume")
    for f in ("--config.file", "--web.config.file"):
        path = flag(f)
        if path and not any(path.startswith(p.rstrip("/") + "/") for p in mounts):
            fail(f"{name}: {f}={path} is under no mount")
    sc = c["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"] and pod["securityContext"].get("runAsNonRoot")):
        fail(f"{name}: the security context is not strict: {sc}")
    return flag


def check_config(name, docs, flag, work, tls_pair):
    """The rendered inventory and web config pass the exporter's own --config.check."""
    binary = os.environ["ATE_BIN"]
    cm = next((d for d in docs if d["kind"] == "ConfigMap" and not d["metadata"]["name"].endswith("-dashboards")), None)
    config_path = flag("--config.file")
    if cm is None:
        print(f"{name}: inventory from an existing ConfigMap/Secret: not rendered, not checked")
        return
    cfg = work / name / "config" / Path(config_path).name
    cfg.parent.mkdir(parents=True)
    cfg.write_text(cm["data"][Path(config_path).name])
    cmd = [binary, "--config.check", "--config.file", cfg]
    web_path = flag("--web.config.file")
    secret = next((d for d in docs if d["kind"] == "Secret"), None)
    if web_path and secret:
        web = work / name / "web" / Path(web_path).name
        web.parent.mkdir(parents=True)
        data = dict(secret.get("stringData", {}))
        data.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
        web.write_text(data[web.name])
        # The tlsSecret's keys are projected beside the web config: a test pair stands in.
        for f in tls_pair:
            shutil.copy(f, web.parent / f.name)
        cmd += ["--web.config.file", web]
    elif web_path:
        print(f"{name}: web config from an existing Secret: not rendered, not checked")
    ok, out = run(cmd)
    print(f"{name}: --config.check: {out}")
    if not ok:
        fail(f"{name}: --config.check failed")


def check_rules(name, docs, values, work):
    rule = next((d for d in docs if d["kind"] == "PrometheusRule"), None)
    if rule is None:
        return
    groups = rule["spec"]["groups"]
    job = values.get("nameOverride") or "api-token-exporter"
    extra = values.get("prometheusRule", {}).get("alertLabels", {})
    for g in groups:
        for r in g["rules"]:
            if any(r.get("labels", {}).get(k) != v for k, v in extra.items()):
                fail(f"{name}: {r['alert']} lacks the alertLabels {extra}")
            # The project's unit tests expect the shipped labels.
            for k in extra:
                r["labels"].pop(k, None)
    d = work / name / "rules"
    (d / "tests").mkdir(parents=True)
    (d / "api-token-exporter.rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    # The health alerts select the monitors' job, which follows nameOverride: so do the cases.
    for t in sorted((ROOT / "alerts/tests").glob("*.test.yml")):
        text = t.read_text().replace('job="api-token-exporter"', f'job="{job}"')
        text = text.replace("job: api-token-exporter", f"job: {job}")
        text = text.replace("(job api-token-exporter)", f"(job {job})")
        text = text.replace('in job \\"api-token-exporter\\"', f'in job \\"{job}\\"')
        (d / "tests" / t.name).write_text(text)
    for cmd in (["promtool", "check", "rules", d / "api-token-exporter.rules.yml"],
                ["promtool", "test", "rules", *sorted((d / "tests").glob("*.test.yml"))]):
        ok, out = run(cmd)
        print(f"{name}: {' '.join(str(c) for c in cmd[:3])}: {'SUCCESS' if ok else out}")
        if not ok:
            fail(f"{name}: {' '.join(str(c) for c in cmd[:3])} failed on the rendered PrometheusRule")


def main():
    write = "--write" in sys.argv or os.environ.get("UPDATE_GOLDEN") == "1"
    work = Path([a for a in sys.argv[1:] if not a.startswith("--")][0])
    tls_pair = [work / "tls.crt", work / "tls.key"]
    ok, out = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                   "-nodes", "-days", "1", "-subj", "/CN=api-token-exporter", "-addext",
                   "subjectAltName=DNS:api-token-exporter", "-keyout", tls_pair[1], "-out", tls_pair[0]])
    if not ok:
        sys.exit(f"openssl: {out}")

    print("== helm lint --strict")
    cases = sorted((CHART / "ci").glob("*-values.yaml"))
    for values_file in [None, *cases]:
        values = yaml.safe_load(values_file.read_text()) if values_file else None
        report = helm.lint(CHART, values, strict=True, kube_version="v1.28.0")
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        label = values_file.name if values_file else "defaults"
        print(f"lint {label}: {len(report['messages'])} messages, {len(bad)} warnings or errors")
        for m in bad:
            fail(f"lint {label}: {m}")

    print("== ci/*-values.yaml")
    core, monitoring = [], []
    for values_file in cases:
        name = values_file.name.removesuffix("-values.yaml")
        values = yaml.safe_load(values_file.read_text()) or {}
        try:
            rendered = render(values)
        except helm.HelmError as e:
            fail(f"{name}: render: {e}")
            continue
        docs = documents(rendered)
        print(f"{name}: {', '.join(d['kind'] for d in docs)}")
        (work / name).mkdir()
        path = work / name / "manifests.yaml"
        path.write_text(yaml.safe_dump_all([d for d in docs if "monitoring.coreos.com" not in d["apiVersion"]]))
        core.append(path)
        path = work / name / "monitoring.yaml"
        path.write_text(yaml.safe_dump_all([d for d in docs if "monitoring.coreos.com" in d["apiVersion"]]))
        monitoring.append(path)
        flag = check_statefulset(name, docs)
        check_config(name, docs, flag, work, tls_pair)
        check_rules(name, docs, values, work)
        if name == "golden":
            want = golden_text(rendered)
            if write:
                GOLDEN.write_text(want)
                print(f"wrote {GOLDEN.relative_to(ROOT)}")
            elif not GOLDEN.exists() or GOLDEN.read_text() != want:
                fail(f"{GOLDEN.relative_to(ROOT)} differs from the chart's rendering of ci/golden-values.yaml; "
                     "regenerate it with UPDATE_GOLDEN=1 .ci/checks/helm.sh")
            else:
                print(f"golden: {GOLDEN.relative_to(ROOT)} is the chart's rendering")

    for version in KUBE_VERSIONS:
        ok, out = run(["kubernetes-validate", "--strict", "--quiet", "-k", version, *core])
        print(f"kubernetes-validate --strict -k {version}: {len(core)} files {'valid' if ok else 'INVALID'}")
        if not ok or "ERROR" in out:
            print(out)
            fail(f"kubernetes-validate -k {version}")
    tools = Path(os.environ["NODE_TOOLS"])
    ok, out = run(["node", tools / "validate-monitoring.mjs", *monitoring])
    print(out.splitlines()[-1] if out else "")
    if not ok:
        print(out)
        fail("Prometheus Operator models")

    print("== the packaged chart carries the rules and dashboards the symlinks point at")
    with helm.Chart.load(CHART) as chart:
        archive = chart.save(work)
    values = {"prometheusRule": {"enabled": True}, "dashboards": {"enabled": True}}
    try:
        same = render(values, archive) == render(values)
    except helm.HelmError as e:
        same = False
        print(e)
    if not same:
        fail(f"{Path(archive).name} renders differently from the chart directory")
    else:
        print(f"{Path(archive).name}: renders the PrometheusRule and dashboards as the directory does")

    print("== tests/invalid/*.yaml must fail with their .expect.txt")
    invalid = sorted((CHART / "tests/invalid").glob("*.yaml"))
    for values_file in invalid:
        expect = [l for l in values_file.with_suffix(".expect.txt").read_text().splitlines() if l.strip()]
        try:
            render(yaml.safe_load(values_file.read_text()) or {})
            fail(f"{values_file.name}: rendered, but must fail with {expect}")
            continue
        except helm.HelmError as e:
            message = str(e)
        missing = [l for l in expect if l not in message]
        if missing:
            fail(f"{values_file.name}: the error lacks {missing}: {message}")
        else:
            print(f"{values_file.name}: refused as expected ({expect[0]})")

    print(f"\nhelm check: {len(cases)} value sets, {len(invalid)} invalid fixtures, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
