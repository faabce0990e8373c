{{/* Names: the release name when it already contains the chart name, else <release>-taskgrant. */}}
{{- define "taskgrant.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kept to 48 characters so that "<fullname>-webhook" stays a valid Service name (63). */}}
{{- define "taskgrant.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "taskgrant.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taskgrant.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskgrant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskgrant.labels" -}}
helm.sh/chart: {{ include "taskgrant.chart" . }}
{{ include "taskgrant.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: taskgrant
{{- end }}

{{- /* tg-* ServiceAccounts are task identities: the identity guard refuses every pod that runs as
one without its task's label, so the operator's own (a release named "tg") would never start. */}}
{{- define "taskgrant.serviceAccountName" -}}
{{- $name := include "taskgrant.fullname" . }}
{{- if hasPrefix "tg-" $name }}
{{- fail (printf "the release's names would start with \"tg-\" (%s), which taskgrant reserves for task ServiceAccounts: choose another release name or set fullnameOverride" $name) }}
{{- end }}
{{- $name }}
{{- end }}

{{/* The Service in front of the webhook port; also the name the serving certificate carries. */}}
{{- /*
How task pods are admitted in fact: policy (MutatingAdmissionPolicy inside the API server) only
where the API server serves it (Kubernetes 1.36+), else the webhook.
*/}}
{{- define "taskgrant.admissionMode" -}}
{{- if and (eq .Values.admissionMode "policy") (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy") -}}
policy
{{- else -}}
webhook
{{- end -}}
{{- end -}}

{{- define "taskgrant.webhookService" -}}
{{- include "taskgrant.fullname" . }}-webhook
{{- end }}

{{- define "taskgrant.tlsSecret" -}}
{{- include "taskgrant.fullname" . }}-webhook-tls
{{- end }}

{{- define "taskgrant.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
A Go duration made of one number and one unit (s, m or h), in seconds. values.schema.json
enforces the shape; Helm has no duration parser of its own.
*/}}
{{- define "taskgrant.seconds" -}}
{{- $n := regexFind "^[0-9]+" . | int64 }}
{{- $unit := regexFind "[smh]$" . }}
{{- if eq $unit "h" }}{{ mul $n 3600 }}{{ else if eq $unit "m" }}{{ mul $n 60 }}{{ else }}{{ $n }}{{ end }}
{{- end }}

{{/*
The grantable ceiling must never hold a wildcard or a verb that lets the holder climb past
RBAC (escalate, impersonate, bind). values.schema.json refuses them first; this check still
holds when a caller skips schema validation.
*/}}
{{- define "taskgrant.checkCeiling" -}}
{{- range $i, $rule := .Values.grantableCeiling }}
{{- range $field := list "apiGroups" "resources" "verbs" "resourceNames" }}
{{- range $value := (get $rule $field | default list) }}
{{- if contains "*" $value }}
{{- fail (printf "grantableCeiling[%d].%s contains %q: wildcards are never grantable; list what tasks may receive" $i $field $value) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $verb := $rule.verbs }}
{{- if has $verb (list "escalate" "impersonate" "bind") }}
{{- fail (printf "grantableCeiling[%d].verbs contains %q: escalate, impersonate and bind are never grantable (name ClusterRoles in bindableClusterRoles instead)" $i $verb) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
