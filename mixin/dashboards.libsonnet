// The Grafana dashboards. Their source is the classic dashboard JSON in mixin/dashboards/, as
// exported from Grafana (no grafonnet: jsonnet-bundler cannot fetch it here); this file applies
// _config to it. render.py writes the result to dashboards/.

// Applies f to every string inside a JSON value.
local mapStrings(f, v) =
  if std.isString(v) then f(v)
  else if std.isArray(v) then [mapStrings(f, x) for x in v]
  else if std.isObject(v) then { [k]: mapStrings(f, v[k]) for k in std.objectFields(v) }
  else v;

{
  local c = $._config,

  // The uids written in the source files; links between the dashboards use them.
  local sourceUids = { overview: 'api-token-overview', detail: 'api-token-detail' },

  local configure(dashboard, which) =
    // Data links to the other dashboard go through /d/<uid>/, so they follow a changed uid.
    mapStrings(
      function(s)
        std.foldl(
          function(acc, k) std.strReplace(acc, '/d/%s/' % sourceUids[k], '/d/%s/' % c.dashboardUids[k]),
          std.objectFields(sourceUids),
          s
        ),
      dashboard
    ) + {
      uid: c.dashboardUids[which],
      tags: c.dashboardTags,
      refresh: c.dashboardRefresh,
      timezone: c.dashboardTimezone,
      links: [
        link + (if link.type == 'dashboards' then { tags: c.dashboardTags } else {})
        for link in dashboard.links
      ],
    },

  grafanaDashboards+:: {
    'api-token-overview.json': configure(import 'dashboards/api-token-overview.json', 'overview'),
    'api-token-detail.json': configure(import 'dashboards/api-token-detail.json', 'detail'),
  },
}
