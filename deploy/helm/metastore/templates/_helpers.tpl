{{/* Names shared by every template. Peers find each other as
     <fullname>-<i>.<fullname>-headless.<namespace>.svc through the headless Service. */}}
{{- define "metastore.fullname" -}}
{{- printf "%s" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "metastore.headless" -}}
{{- printf "%s-headless" (include "metastore.fullname" .) -}}
{{- end -}}

{{- define "metastore.labels" -}}
app.kubernetes.io/name: metastore
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "metastore.selector" -}}
app.kubernetes.io/name: metastore
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "metastore.clientScheme" -}}
{{- if .Values.tls.client.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{- define "metastore.peerScheme" -}}
{{- if .Values.tls.peer.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* name=peerURL for every member: etcd's --initial-cluster. */}}
{{- define "metastore.initialCluster" -}}
{{- $full := include "metastore.fullname" . -}}
{{- $headless := include "metastore.headless" . -}}
{{- $scheme := include "metastore.peerScheme" . -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- if $i }},{{ end -}}
{{ $full }}-{{ $i }}={{ $scheme }}://{{ $full }}-{{ $i }}.{{ $headless }}.{{ $.Release.Namespace }}.svc:{{ $.Values.ports.peer }}
{{- end -}}
{{- end -}}
