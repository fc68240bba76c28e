// The alert rules of api-token-exporter, one object per alert, in their groups.
//
// To add an alert: add one object to the list of its group, with a `comment::` that explains the
// alert and says why its `for:` is what it is (in a line with "for: <duration>."), a static
// `summary` sentence and a templated `description`; then add promtool cases in alerts/tests,
// a section in alerts/runbook.md and the name in tests/it/alerts.rs, and run
// `python3 mixin/render.py` to write alerts/api-token-exporter.rules.yml.
//
// `comment::` is hidden, so std.manifestYamlDoc leaves it out; render.py writes it as the YAML
// comment above the alert, where tests/it/alerts.rs looks for the `for:` reason.
//
// Annotations follow the monitoring-mixins guidelines: `summary` is a static sentence (it groups
// well in Alertmanager and reads the same in every notification), `description` carries the
// token, provider, owner and values through templates.

// A description is written across several lines for reading; Prometheus gets one line.
local fold(text) = std.join(' ', std.split(std.rstripChars(text, '\n'), '\n'));

{
  local c = $._config,
  local runbook(alert) = c.runbookUrlPattern % std.asciiLower(alert),
  // The _config-wide labels, then the overrides of this alert, so an override wins.
  local configure(rule) =
    rule { labels+: c.extraAlertLabels } + std.get(c.alertOverrides, rule.alert, {}),

  // The rules as written, before the _config-wide labels and overrides are applied.
  apiTokenExporterAlertGroups:: [
    {
      name: 'api-token-expiry',
      rules: [
        {
          comment:: |||
            Warning band: time left is inside the token's warning window (14 days unless the inventory
            says otherwise). It keeps firing through the critical band; route or inhibit it with
            ApiTokenExpiringCritical (see alerts/alertmanager.example.yml).
            The provider must have said within the last hour that the token is alive: valid,
            unverified (a JWT read without its key) or forbidden (it authenticates but may not call
            the probe's endpoint). Looking back an hour means a provider blip neither fires nor
            resolves this alert, while a provider that has said nothing for an hour no longer keeps
            it alive (ApiTokenProbeFailing has fired by then).
            for: 1h. The window is measured in days, so an hour costs nothing, and it rides out a
            rotation in flight (the old value still configured while the new one rolls out).
          |||,
          alert: 'ApiTokenExpiringSoon',
          expr: |||
            (
                (api_token_expiry_timestamp_seconds - time())
              <= on (job, instance, token, provider)
                (
                    api_token_warning_threshold_seconds
                  or on (job, instance, token, provider)
                    (0 * api_token_expiry_timestamp_seconds + on (job, instance) group_left () api_token_default_warning_threshold_seconds)
                )
              and
                (api_token_expiry_timestamp_seconds - time()) > 0
              and on (job, instance, token, provider)
                (max_over_time(api_token_state{state=~"valid|unverified|forbidden"}[1h]) == 1)
              unless on (job, instance, token, provider)
                (api_token_state{state="invalid"} == 1)
            )
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '1h',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'An API token expires within its warning window.',
            description: fold(|||
              Token {{ $labels.token }} of provider {{ $labels.provider }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              expires in {{ $value | humanizeDuration }}, inside its warning window. Rotate it and
              update the secret the exporter reads.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenExpiringSoon'),
          },
        },
        {
          comment:: |||
            Critical band: time left is inside the token's critical window (3 days by default).
            for: 15m. This pages; a quarter of an hour is small next to a window of days and lets a
            rotation that is being applied right now land first.
          |||,
          alert: 'ApiTokenExpiringCritical',
          expr: |||
            (
                (api_token_expiry_timestamp_seconds - time())
              <= on (job, instance, token, provider)
                (
                    api_token_critical_threshold_seconds
                  or on (job, instance, token, provider)
                    (0 * api_token_expiry_timestamp_seconds + on (job, instance) group_left () api_token_default_critical_threshold_seconds)
                )
              and
                (api_token_expiry_timestamp_seconds - time()) > 0
              and on (job, instance, token, provider)
                (max_over_time(api_token_state{state=~"valid|unverified|forbidden"}[1h]) == 1)
              unless on (job, instance, token, provider)
                (api_token_state{state="invalid"} == 1)
            )
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '15m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'An API token expires within its critical window.',
            description: fold(|||
              Token {{ $labels.token }} of provider {{ $labels.provider }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              expires in {{ $value | humanizeDuration }}, inside its critical window. Whatever
              uses it stops working then: rotate it now.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenExpiringCritical'),
          },
        },
        {
          comment:: |||
            The known expiry has passed and the provider's current answer is conclusive (invalid, or
            still valid/unverified/forbidden because of clock skew or a decoded JWT). The exporter keeps the
            last known expiry while a provider is down, so the state check is what keeps an outage
            from firing this alert.
            for: 5m. The critical alert has been paging for days before this; five minutes covers
            the skew between Prometheus' clock and the provider's and a rotation landing at the
            last moment.
          |||,
          alert: 'ApiTokenExpired',
          expr: |||
            (
                (time() - api_token_expiry_timestamp_seconds) >= 0
              and on (job, instance, token, provider)
                (api_token_state{state=~"valid|invalid|unverified|forbidden"} == 1)
            )
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'An API token has expired.',
            description: fold(|||
              Token {{ $labels.token }} of provider {{ $labels.provider }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              expired {{ $value | humanizeDuration }} ago. Anything still using it is failing:
              issue a new token and update the secret the exporter reads.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenExpired'),
          },
        },
      ],
    },
    {
      name: 'api-token-validity',
      rules: [
        {
          comment:: |||
            The provider says the token is not valid (revoked, deleted or unknown to it) and it has
            not simply expired: expired tokens raise ApiTokenExpired instead, so one cause gives one
            alert. Only state="invalid" counts; unreachable, rate_limited and misconfigured do not.
            for: 10m. Replicated providers can briefly deny a token that was issued a moment ago;
            the next probe settles it, and a revoked token stays revoked.
          |||,
          alert: 'ApiTokenInvalid',
          expr: |||
            (
                (api_token_state{state="invalid"} == 1)
              unless on (job, instance, token, provider)
                (api_token_expiry_timestamp_seconds <= time())
            )
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '10m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'An API token is no longer valid at its provider.',
            description: fold(|||
              Provider {{ $labels.provider }} answers that token {{ $labels.token }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              is not valid: it was revoked, deleted or never existed there.
              {{ with printf "api_token_expiry_timestamp_seconds{job=%q,instance=%q,token=%q,provider=%q} - time()" $labels.job $labels.instance $labels.token $labels.provider | query }}It would have expired in {{ . | first | value | humanizeDuration }}.{{ else }}No expiry is known for it.{{ end }}
              Issue a new token and update the secret the exporter reads.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenInvalid'),
          },
        },
        {
          comment:: |||
            The provider could not be asked: it is unreachable or rate limiting the exporter. This
            says nothing about the token itself, which is why it is a separate, warning-level alert.
            for: 15m. A timeout, a provider restart or one rate-limit window is a blip; several
            probes in a row failing for a quarter of an hour means nobody knows whether the token
            still works.
          |||,
          alert: 'ApiTokenProbeFailing',
          expr: |||
            (api_token_state{state=~"unreachable|rate_limited"} == 1)
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'A provider cannot be asked whether an API token is valid.',
            description: fold(|||
              The exporter cannot check token {{ $labels.token }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }}):
              provider {{ $labels.provider }} has been {{ $labels.state }} for at least 15 minutes.
              {{ with printf "time() - api_token_last_verdict_timestamp_seconds{job=%q,instance=%q,token=%q,provider=%q}" $labels.job $labels.instance $labels.token $labels.provider | query }}The last conclusive answer was {{ . | first | value | humanizeDuration }} ago.{{ else }}It has given no conclusive answer since the exporter started.{{ end }}
              Expiry and validity alerts for this token are on hold until it answers; see
              api_token_probe_failures_total{provider="{{ $labels.provider }}"} for the reason.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenProbeFailing'),
          },
        },
        {
          comment:: |||
            The exporter cannot fully check the token because of its set-up: its own credentials
            for the provider are rejected, a secret cannot be read, discovery fails (misconfigured),
            or the token authenticates but lacks the rights the probe call needs (forbidden). The
            first says nothing about the token; the second proves it alive but may hide its expiry
            and scopes.
            for: 10m. Config management often writes a secret and the config in two steps; ten
            minutes lets the second step and a reload land.
          |||,
          alert: 'ApiTokenProviderMisconfigured',
          expr: |||
            (api_token_state{state=~"misconfigured|forbidden"} == 1)
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'The exporter cannot fully check an API token at its provider.',
            description: fold(|||
              The exporter's set-up for provider {{ $labels.provider }} does not let it fully check
              token {{ $labels.token }} (owner: {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }}):
              state {{ $labels.state }}. Check the provider's client credentials and secrets in the
              exporter's configuration, the rights the probe needs, its log and /api/v1/tokens;
              failures are counted by reason in
              api_token_probe_failures_total{provider="{{ $labels.provider }}"}.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenProviderMisconfigured'),
          },
        },
        {
          comment:: |||
            A policy from the inventory is violated (token too old, too broad a scope, no expiry...).
            for: 30m. Policies are about slow facts; half an hour keeps a token that is being
            replaced from raising an alert it will not have once the rollout finishes.
          |||,
          alert: 'ApiTokenPolicyViolation',
          expr: |||
            (api_token_policy_violation == 1)
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '30m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'An API token violates a policy of the inventory.',
            description: fold(|||
              Token {{ $labels.token }} of provider {{ $labels.provider }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              violates the inventory policy {{ $labels.policy }}. Replace the token with one that
              meets the policy, or change the policy in the inventory.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenPolicyViolation'),
          },
        },
        {
          comment:: |||
            The provider's answer about a token had an anomaly the exporter had to work around: an
            expiry field it could not read (the expiry shown is unknown, or the last readable one),
            an expiry in milliseconds, more scopes than --provider.max-scopes, a text longer than
            --provider.max-label-length. The token still works (the verdict is the provider's); what
            the exporter says about it may be incomplete, so expiry alerts may stay silent.
            for: 1h. The anomaly stays until an answer without it, and nothing here is urgent; an
            hour lets a provider's odd answer during its own deploy pass without bothering anyone.
          |||,
          alert: 'ApiTokenAnswerAnomaly',
          expr: |||
            (api_token_answer_anomaly == 1)
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '1h',
          labels: {
            severity: 'warning',
          },
          annotations: {
            summary: 'A provider answered with an anomaly about an API token.',
            description: fold(|||
              The last answer of provider {{ $labels.provider }} about token {{ $labels.token }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              had the anomaly {{ $labels.anomaly }} for more than an hour. The token's verdict is
              unchanged, but its expiry or scopes as shown may be incomplete. See the token's flags on the
              status page or in /api/v1/tokens.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenAnswerAnomaly'),
          },
        },
        {
          comment:: |||
            A token with a rotate: block could not be rotated or renewed: its last attempt failed
            (retried with a backoff of up to an hour) or was interrupted by a crash during a
            provider call that must not be repeated (it waits for an operator). The old value is
            still in use, and the token keeps getting closer to its expiry.
            for: 30m. A provider's short outage is retried within minutes; half an hour of failing
            attempts means the retries are not going to fix it, while the rotation window (days
            before expiry, in most configurations) still leaves time to act.
          |||,
          alert: 'ApiTokenRotationFailing',
          expr: |||
            (api_token_rotation_failing == 1)
            * on (job, instance, token, provider) group_left (owner, team, runbook)
              api_token_info
          |||,
          'for': '30m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'The automatic rotation of an API token is failing.',
            description: fold(|||
              The rotation of token {{ $labels.token }} of provider {{ $labels.provider }} (owner:
              {{ with $labels.owner }}{{ . }}{{ else }}none set{{ end }}{{ with $labels.team }}, team {{ . }}{{ end }})
              has been failing for more than 30 minutes; the old value is still in use. The status
              page and /api/v1/tokens show the step and the error.
            |||),
            runbook_url: '{{ with $labels.runbook }}{{ . }}{{ else }}%s{{ end }}' % runbook('ApiTokenRotationFailing'),
          },
        },
      ],
    },
    {
      name: 'api-token-exporter',
      rules: [
        {
          comment:: |||
            Prometheus cannot scrape the exporter, so every alert above is blind.
            for: 10m. A restart or a rollout takes seconds; expiry windows are days long, so ten
            minutes of blindness loses nothing and avoids alerting on every deploy.
          |||,
          alert: 'ApiTokenExporterDown',
          expr: 'up{%(apiTokenExporterSelector)s} == 0' % c,
          'for': '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'Prometheus cannot scrape an api-token-exporter target.',
            description: fold(|||
              Prometheus has failed to scrape api-token-exporter at {{ $labels.instance }} (job
              {{ $labels.job }}) for more than 10 minutes. No token expiry or validity alert can
              fire while it is down.
            |||),
            runbook_url: runbook('ApiTokenExporterDown'),
          },
        },
        {
          comment:: |||
            Prometheus has no target for the exporter at all (service discovery lost it, the scrape
            job was renamed), which ApiTokenExporterDown cannot see because there is no `up` series.
            for: 15m. Service discovery can drop and re-add a target during a rollout.
          |||,
          alert: 'ApiTokenExporterAbsent',
          expr: 'absent(up{%(apiTokenExporterSelector)s})' % c,
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'Prometheus scrapes no api-token-exporter target.',
            description: fold(|||
              Prometheus has had no target {{ with $labels.job }}in job "{{ . }}"{{ else }}matching
              the rule's selector{{ end }} for more than 15 minutes, so no token metrics are
              collected and no token alert can fire. Check the scrape configuration and service
              discovery; if the job has another name, set apiTokenExporterSelector in the mixin's
              _config (mixin/config.libsonnet) and render the rules again.
            |||),
            runbook_url: runbook('ApiTokenExporterAbsent'),
          },
        },
        {
          comment:: |||
            A reload (SIGHUP or POST /-/reload) failed; the exporter keeps running the previous
            configuration, so newly added tokens are not watched and removed ones still are.
            The value is the age of the configuration in use.
            for: 5m. Config management may signal a reload while it is still writing files; the
            next reload a moment later succeeds.
          |||,
          alert: 'ApiTokenExporterConfigReloadFailed',
          expr: |||
            (time() - api_token_exporter_config_last_reload_success_timestamp_seconds)
              and on (job, instance)
            (api_token_exporter_config_last_reload_successful == 0)
          |||,
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'An api-token-exporter instance failed to reload its configuration.',
            description: fold(|||
              The last configuration reload of api-token-exporter at {{ $labels.instance }} failed;
              it still runs the configuration it loaded {{ $value | humanizeDuration }} ago. Run
              `api-token-exporter --config.check` on the new file and read the exporter's log.
            |||),
            runbook_url: runbook('ApiTokenExporterConfigReloadFailed'),
          },
        },
        {
          comment:: |||
            The web config (--web.config.file: TLS, basic auth, headers) changed into something the
            exporter refused: invalid, or lowering the protection in use (basic auth or client
            certificates turned off, an empty or cut-short file). The previous web config keeps
            serving, so nothing is open, but a rotated certificate is not served either. The value is
            the age of the web config in use.
            for: 5m. A certificate rotation writes the certificate and the key one after the other and
            the file watcher may read between the two; its next check, seconds later, succeeds.
          |||,
          alert: 'ApiTokenExporterWebConfigReloadFailed',
          expr: |||
            (time() - api_token_exporter_web_config_last_reload_success_timestamp_seconds)
              and on (job, instance)
            (api_token_exporter_web_config_last_reload_successful == 0)
          |||,
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'An api-token-exporter instance refused its new web config.',
            description: fold(|||
              api-token-exporter at {{ $labels.instance }} refused the new --web.config.file (it is
              invalid, or it would lower the protection in use); it still serves the web config it
              read {{ $value | humanizeDuration }} ago, so a rotated certificate is not served yet.
              Run `api-token-exporter --config.check` with the web config and read the exporter's
              log. Turning basic auth or client certificates off takes a restart.
            |||),
            runbook_url: runbook('ApiTokenExporterWebConfigReloadFailed'),
          },
        },
        {
          comment:: |||
            The exporter's own notifications (Slack, email, webhook...) fail. The exporter retries a
            message until it gets through and counts every failed attempt, so a message that needed
            a retry is not a problem: the alert wants failed attempts in the last 15 minutes and no
            successful delivery through that notifier in the same 15 minutes (or none ever).
            for: 15m. A short outage of the chat or mail service that a retry gets through ends the
            condition before anyone is bothered; half an hour without delivery is worth a look.
          |||,
          alert: 'ApiTokenNotificationsFailing',
          expr: |||
            sum by (job, instance, notifier) (increase(api_token_notification_failures_total[15m])) > 0
            unless on (job, instance, notifier)
              (time() - max by (job, instance, notifier) (api_token_notification_last_success_timestamp_seconds) < 900)
          |||,
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'An api-token-exporter notifier cannot deliver notifications.',
            description: fold(|||
              {{ $value | humanize }} delivery attempts by api-token-exporter at
              {{ $labels.instance }} through notifier {{ $labels.notifier }} failed in the last 15
              minutes, and none got through. On-call may not be told about expiring tokens directly;
              the Prometheus alerts still fire. Check the notifier's credentials and endpoint in the
              exporter's log.
            |||),
            runbook_url: runbook('ApiTokenNotificationsFailing'),
          },
        },
        {
          comment:: |||
            An inventory source (sources: in the config) cannot list: its credential is refused, the
            provider answers 5xx or 429, its directory is gone. The exporter keeps the source's last
            good listing, so nothing is dropped and no token turns invalid, but tokens created or
            revoked since are not followed. The value is the age of the last complete listing (0 when
            the source never listed).
            for: 30m. Sources refresh every few minutes and one failed listing costs nothing (the last
            good one stays); half an hour of failures means the inventory has stopped following the
            source.
          |||,
          alert: 'ApiTokenSourceFailing',
          expr: |||
            (
                (time() - api_token_source_last_success_timestamp_seconds)
                  and on (job, instance, source)
                (api_token_source_up == 0)
            )
            or
            (
                (api_token_source_up == 0)
                  unless on (job, instance, source)
                api_token_source_last_success_timestamp_seconds
            )
          |||,
          'for': '30m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'An api-token-exporter inventory source cannot list its tokens.',
            description: fold(|||
              Source {{ $labels.source }} ({{ $labels.kind }}) of api-token-exporter at
              {{ $labels.instance }} fails to list; {{ if gt $value 0.0 }}its last complete listing was
              {{ $value | humanizeDuration }} ago{{ else }}it has never listed{{ end }}. Its last good
              listing stays in the inventory, but new and removed tokens are not followed.
              api_token_source_failures_total tells the reason; the exporter's log has the detail.
            |||),
            runbook_url: runbook('ApiTokenSourceFailing'),
          },
        },
      ],
    },
  ],

  prometheusAlerts+:: {
    // render.py writes this above the groups in alerts/api-token-exporter.rules.yml.
    comment:: |||
      Conventions used by every token alert:
      - Time left is compared with the per-token windows the exporter publishes
        (api_token_warning_threshold_seconds, api_token_critical_threshold_seconds), so a token's
        `warning_before`/`critical_before` in the inventory is honoured without editing the rules.
      - Owner, team and runbook come from api_token_info, the only series that carries the
        inventory's labels. Joining on (job, instance, token, provider) instead of (token, provider)
        alone keeps the join valid when two exporter replicas watch the same tokens.
      - Expiry and validity alerts fire only from conclusive answers of the provider. A provider that
        is down, rate limiting or misconfigured says nothing about the token, so those states raise
        ApiTokenProbeFailing or ApiTokenProviderMisconfigured and never ApiTokenExpired or
        ApiTokenInvalid.
      - Only the health alerts on `up` need a job selector (_config.apiTokenExporterSelector, by
        default job="api-token-exporter" as in dashboards/prometheus-scrape.example.yml); every
        other alert reads metrics that only this exporter publishes.
    |||,
    groups+: [
      group { rules: [configure(rule) for rule in group.rules] }
      for group in $.apiTokenExporterAlertGroups
    ],
  },
}
