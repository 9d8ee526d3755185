{{/* The release's full name: "fairpilot" for a release called fairpilot, else release-fairpilot. */}}
{{- define "fairpilot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fairpilot.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fairpilot.labels" -}}
{{ include "fairpilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fairpilot
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fairpilot.serviceAccountName" -}}
{{- default (include "fairpilot.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "fairpilot.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}

{{/* The namespaces the operator watches (one per line), when it does not watch them all. */}}
{{- define "fairpilot.namespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- range .Values.watch.namespaces }}
{{ . }}
{{- end -}}
{{- else -}}
{{ .Release.Namespace }}
{{- end -}}
{{- end -}}

{{- define "fairpilot.peering" -}}
{{- if gt (int .Values.replicaCount) 1 -}}{{ .Values.peering.name }}{{- end -}}
{{- end -}}
