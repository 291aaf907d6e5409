{{- define "trustmirror.name" -}}{{ .Release.Name }}-trustmirror{{- end -}}
{{- define "trustmirror.labels" -}}
app.kubernetes.io/name: trustmirror
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "trustmirror.selector" -}}
app.kubernetes.io/name: trustmirror
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "trustmirror.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" }}{{ .Values.tls.secretName }}{{ else }}{{ include "trustmirror.name" . }}-tls{{ end -}}
{{- end -}}
{{- define "trustmirror.image" -}}
{{- if .Values.image.digest }}{{ .Values.image.repository }}@{{ .Values.image.digest }}{{ else }}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{ end -}}
{{- end -}}
