// Everything a user of the mixin may change, with the defaults that render the files shipped in
// alerts/ and dashboards/. Override with
//   (import 'mixin.libsonnet') + { _config+:: { apiTokenExporterSelector: 'job="tokens"' } }
{
  _config+:: {
    // Selects the exporter's scrape targets in `up`, for ApiTokenExporterDown and
    // ApiTokenExporterAbsent. Equality matchers keep the job in ApiTokenExporterAbsent's labels,
    // which absent() cannot do for regex matchers.
    apiTokenExporterSelector: 'job="api-token-exporter"',

    // Added to every alert's labels (a routing label, a team...). An alert's own labels win only
    // where they are not set here.
    extraAlertLabels: {},

    // Merged into the alert of that name, e.g. { ApiTokenProbeFailing: { 'for': '30m' } } or
    // { ApiTokenPolicyViolation: { labels+: { severity: 'info' } } }.
    alertOverrides: {},

    // Where runbook_url points when the token has no `runbook` label; %s is the alert name in
    // lower case, the anchor of its section in alerts/runbook.md.
    runbookUrlPattern: 'https://github.com/api-token-exporter/api-token-exporter/blob/main/alerts/runbook.md#%s',

    // Grafana: the tags of both dashboards (their "API tokens" link menu lists dashboards with
    // these tags), their uids (the overview links to the detail dashboard by uid), the refresh
    // interval and the time zone ('' is the viewer's browser setting).
    dashboardTags: ['api-token-exporter'],
    dashboardUids: {
      overview: 'api-token-overview',
      detail: 'api-token-detail',
    },
    dashboardRefresh: '1m',
    dashboardTimezone: '',
  },
}
