{{/* The chart name, or nameOverride. Also the app.kubernetes.io/name label and the job. */}}
{{- define "ate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The resource name: DNS labels are at most 63 characters. */}}
{{- define "ate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: the pods carry exactly these (plus podLabels), so the Service, the
     StatefulSet and the PodMonitor select the same pods. */}}
{{- define "ate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ate.labels" -}}
{{ include "ate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The web config's Secret: the chart's own (inline) or the user's. Empty without one. */}}
{{- define "ate.webConfigSecret" -}}
{{- if .Values.webConfig.existingSecret -}}
{{- .Values.webConfig.existingSecret -}}
{{- else if .Values.webConfig.inline -}}
{{- printf "%s-web-config" (include "ate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the web config serves TLS. */}}
{{- define "ate.webTLS" -}}
{{- if or .Values.webConfig.tls (hasKey .Values.webConfig.inline "tls_server_config") -}}true{{- end -}}
{{- end -}}

{{/* "true" when the web config asks for basic auth. */}}
{{- define "ate.webBasicAuth" -}}
{{- if or .Values.webConfig.basicAuth (hasKey .Values.webConfig.inline "basic_auth_users") -}}true{{- end -}}
{{- end -}}

{{/* The probe handler kind: httpGet, or tcpSocket where the kubelet could not pass the
     web config's authentication (basic auth without a header, required client certificates). */}}
{{- define "ate.probeMode" -}}
{{- $tls := .Values.webConfig.inline.tls_server_config | default dict -}}
{{- $clientCert := has ($tls.client_auth_type | default "") (list "RequireAnyClientCert" "RequireAndVerifyClientCert") -}}
{{- if ne .Values.probes.mode "auto" -}}
{{- .Values.probes.mode -}}
{{- else if or $clientCert (and (include "ate.webBasicAuth" .) (not .Values.probes.httpHeaders)) -}}
tcpSocket
{{- else -}}
httpGet
{{- end -}}
{{- end -}}

{{- define "ate.probeHandler" -}}
{{- if eq (include "ate.probeMode" .root) "tcpSocket" -}}
tcpSocket:
  port: http
{{- else -}}
httpGet:
  path: {{ .path }}
  port: http
  scheme: {{ if include "ate.webTLS" .root }}HTTPS{{ else }}HTTP{{ end }}
  {{- with .root.Values.probes.httpHeaders }}
  httpHeaders:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
{{- end -}}

{{/* Values the schema cannot refuse: combinations. Included by every template that depends
     on them, so `helm template` fails before anything is rendered. */}}
{{- define "ate.validate" -}}
{{- if and .Values.config.existingConfigMap .Values.config.existingSecret -}}
{{- fail "config: set existingConfigMap or existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.webConfig.inline .Values.webConfig.existingSecret -}}
{{- fail "webConfig: set inline or existingSecret, not both" -}}
{{- end -}}
{{- if and (or .Values.webConfig.tls .Values.webConfig.basicAuth) (not .Values.webConfig.existingSecret) -}}
{{- fail "webConfig.tls and webConfig.basicAuth describe an existingSecret; with inline they are read from the file" -}}
{{- end -}}
{{- if and .Values.webConfig.tlsSecret (not (include "ate.webConfigSecret" .)) -}}
{{- fail "webConfig.tlsSecret needs a web config (inline or existingSecret) that names its files" -}}
{{- end -}}
{{- if and .Values.podMonitor.enabled .Values.serviceMonitor.enabled -}}
{{- fail "podMonitor and serviceMonitor: enable one, not both (each scrapes every pod, so every series would be doubled)" -}}
{{- end -}}
{{- range $kind := list "podMonitor" "serviceMonitor" -}}
{{- $m := index $.Values $kind -}}
{{- if and $m.enabled $m.basicAuth (not (include "ate.webTLS" $)) -}}
{{- fail (printf "%s.basicAuth: refused over plain HTTP; the web config must have tls_server_config (or webConfig.tls: true)" $kind) -}}
{{- end -}}
{{- if and $m.enabled (include "ate.webBasicAuth" $) (not $m.basicAuth) -}}
{{- fail (printf "%s.basicAuth: the web config asks for basic auth, so Prometheus needs credentials: set %s.basicAuth" $kind $kind) -}}
{{- end -}}
{{- end -}}
{{- range .Values.extraArgs -}}
{{- $flag := regexReplaceAll "=.*$" . "" -}}
{{- if has $flag (list "--config.file" "--config.check" "--storage.path" "--shard.count" "--shard.index" "--web.config.file" "--web.listen-address") -}}
{{- fail (printf "extraArgs: %s is set by the chart (see values.yaml)" $flag) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The scrape settings both monitor kinds share. */}}
{{- define "ate.monitorEndpoint" -}}
{{- $m := .m -}}
scheme: {{ if include "ate.webTLS" .root }}https{{ else }}http{{ end }}
interval: {{ $m.interval }}
scrapeTimeout: {{ $m.scrapeTimeout }}
{{- with $m.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.relabelings }}
relabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
