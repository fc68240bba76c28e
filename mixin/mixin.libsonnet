// The api-token-exporter monitoring mixin (https://monitoring.mixins.dev): prometheusAlerts and
// grafanaDashboards, configured by _config (config.libsonnet). There are no recording rules;
// prometheusRules is empty so tools that expect the field find it.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet') +
{ prometheusRules+:: { groups+: [] } }
