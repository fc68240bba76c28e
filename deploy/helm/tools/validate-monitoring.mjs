// Validates Prometheus Operator objects (PodMonitor, ServiceMonitor, PrometheusRule) against
// the operator's CRD schemas, as the API server would; kubernetes-validate has no schema for
// them. Usage: node validate-monitoring.mjs FILE...  (multi-document YAML; other kinds are
// skipped). Exits 1 when any object is invalid or of an unknown monitoring.coreos.com kind.
import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import { PodMonitor, ServiceMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = { PodMonitor, ServiceMonitor, PrometheusRule };
let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
    const Model = models[doc.kind];
    const what = `${file}: ${doc.kind} ${doc.metadata?.name}`;
    if (!Model) {
      console.log(`${what}: FAIL: no model for this kind`);
      failed++;
      continue;
    }
    try {
      new Model(doc).validate();
      checked++;
      console.log(`${what}: ok`);
    } catch (e) {
      failed++;
      console.log(`${what}: FAIL: ${e.message}`);
    }
  }
}
console.log(`validate-monitoring: ${checked} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
