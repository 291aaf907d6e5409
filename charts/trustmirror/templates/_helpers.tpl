{{/* Base name of every object: <release>-trustmirror, a DNS label (Service names are ≤ 63). */}}
{{- define "trustmirror.name" -}}{{ printf "%s-trustmirror" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "trustmirror.labels" -}}
app.kubernetes.io/name: trustmirror
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end -}}
{{/* The service's pod selector. Immutable on the Deployment: never add keys here. */}}
{{- define "trustmirror.selector" -}}
app.kubernetes.io/name: trustmirror
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}
{{- define "trustmirror.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" }}{{ required "tls.secretName is required in secret mode" .Values.tls.secretName }}{{ else }}{{ include "trustmirror.name" . }}-tls{{ end -}}
{{- end -}}
{{- define "trustmirror.image" -}}
{{- if .Values.image.digest }}{{ .Values.image.repository }}@{{ .Values.image.digest }}{{ else }}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{ end -}}
{{- end -}}

{{/* The service's config.yaml (rendered into its ConfigMap and hashed into the pod template, so
     a config change rolls the Deployment; policy, banned list and exemptions hot-reload and are
     deliberately not hashed). */}}
{{- define "trustmirror.config" -}}
listen: 0.0.0.0:8080
store: /var/lib/trustmirror/store.redb
tuf:
  {{- if .Values.tuf.upstream }}
  upstream: {{ .Values.tuf.upstream | quote }}
  {{- else if not .Values.bundle.inbox }}
  {{- fail "tuf.upstream is empty and there is no bundle.inbox: nothing would ever bring TUF metadata" }}
  {{- end }}
  {{- if .Values.tuf.root }}
  root: /etc/trustmirror/root/root.json
  {{- end }}
  refresh_interval: {{ .Values.tuf.refreshInterval | quote }}
oci:
  images: {{ toJson .Values.oci.images }}
  insecure_registries: {{ toJson .Values.oci.insecureRegistries }}
  interval: {{ .Values.oci.interval | quote }}
  {{- if .Values.oci.ingestTokenSecret }}
  ingest_token_file: /etc/trustmirror/ingest/token
  {{- end }}
{{- if .Values.bundle.inbox }}
{{- if not .Values.bundle.exporterKeys }}
{{- fail "bundle.inbox needs bundle.exporterKeys: bundles are imported only when signed by a known exporter" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.bundle.shared) }}
{{- fail "bundle.inbox with several replicas needs bundle.shared: true — otherwise a bundle is imported (and moved) by the replica that takes it, and the others never see it" }}
{{- end }}
bundle:
  inbox: /var/lib/trustmirror-inbox
  keys:
  {{- range $name, $_ := .Values.bundle.exporterKeys }}
  - /etc/trustmirror/exporters/{{ $name }}.pub
  {{- end }}
  interval: {{ .Values.bundle.interval | quote }}
  shared: {{ .Values.bundle.shared }}
{{- end }}
admission:
  listen: 0.0.0.0:8443
  tls:
    cert_file: /etc/trustmirror/tls/tls.crt
    key_file: /etc/trustmirror/tls/tls.key
  policies: [/etc/trustmirror/policy/policy.yaml]
  banned_packages: /etc/trustmirror/banned/banned.yaml
  exemptions: /etc/trustmirror/exemptions/exemptions.yaml
  failure_mode: {{ .Values.admission.failureMode }}
  breakglass_max: {{ .Values.admission.breakglassMax | quote }}
  timeout: {{ sub (int .Values.admission.timeoutSeconds) 1 }}s
  record_allowed: {{ .Values.admission.recordAllowed }}
  audit_file: "-"
{{- end -}}

{{/* The resources every webhook entry matches. */}}
{{/* The kinds the webhooks see: every Pod-bearing kind, and (validating webhooks only, `extra`)
     admission.extraRules — the kinds Gatekeeper constraints in the policy match. */}}
{{- define "trustmirror.rules" }}
  rules:
  - operations: [CREATE, UPDATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods, pods/ephemeralcontainers, replicationcontrollers]
  - operations: [CREATE, UPDATE]
    apiGroups: [apps]
    apiVersions: [v1]
    resources: [deployments, statefulsets, daemonsets, replicasets]
  - operations: [CREATE, UPDATE]
    apiGroups: [batch]
    apiVersions: [v1]
    resources: [jobs, cronjobs]
  {{- if .extra }}
  {{- range .root.Values.admission.extraRules }}
  - {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  admissionReviewVersions: [v1]
  sideEffects: None
{{- end }}

{{/* ---- node agent ---- */}}
{{- define "trustmirror.nodeName" -}}{{ printf "%s-trustmirror" .Release.Name | trunc 58 | trimSuffix "-" }}-node{{- end -}}
{{/* A different app.kubernetes.io/name from the service's, so that neither the Service, the
     PodDisruptionBudget nor the anti-affinity of the Deployment ever selects node agent pods. */}}
{{- define "trustmirror.nodeSelector" -}}
app.kubernetes.io/name: trustmirror-node
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}
{{- define "trustmirror.nodeLabels" -}}
{{ include "trustmirror.nodeSelector" . }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: trustmirror
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end -}}
{{/* The agent's image: node.image.* where set, else the chart's image. */}}
{{- define "trustmirror.nodeImage" -}}
{{- $repo := .Values.node.image.repository | default .Values.image.repository -}}
{{- if .Values.node.image.repository -}}
{{- if .Values.node.image.digest }}{{ $repo }}@{{ .Values.node.image.digest }}{{ else }}{{ $repo }}:{{ .Values.node.image.tag | default .Values.image.tag }}{{ end -}}
{{- else -}}
{{ include "trustmirror.image" . }}
{{- end -}}
{{- end -}}
{{/* The TUF repository the agent follows: this release's service unless node.mirror is set. */}}
{{- define "trustmirror.nodeMirror" -}}
{{- if .Values.node.mirror }}{{ .Values.node.mirror }}{{ else }}{{ printf "http://%s.%s.svc:8080/tuf/" (include "trustmirror.name" .) .Release.Namespace }}{{ end -}}
{{- end -}}
{{/* The ConfigMap holding the agent's pinned initial root.json. */}}
{{- define "trustmirror.nodeRootConfigMap" -}}
{{- if .Values.node.root.configMap }}{{ .Values.node.root.configMap }}{{ else if .Values.tuf.root }}{{ include "trustmirror.name" . }}-root{{ else }}{{ fail "node.enabled needs a pinned TUF root: set tuf.root (the chart's root ConfigMap) or node.root.configMap (an existing ConfigMap in the release namespace)" }}{{ end -}}
{{- end -}}
{{- define "trustmirror.nodeRootKey" -}}
{{- if .Values.node.root.configMap }}{{ .Values.node.root.key }}{{ else }}root.json{{ end -}}
{{- end -}}
{{/* The agent's arguments common to the init (--once) and the long-running container. */}}
{{- define "trustmirror.nodeArgs" -}}
- node
- --mirror
- {{ include "trustmirror.nodeMirror" . | quote }}
- --root
- /etc/trustmirror/root/root.json
- --out
- {{ .Values.node.hostPath | quote }}
{{- if .Values.node.policy }}
- --policy
- /etc/trustmirror/policy/policy.yaml
{{- end }}
{{- if .Values.node.allowPartial }}
- --allow-partial
{{- end }}
- --containers-image
- {{ .Values.node.containersImage | quote }}
- --grace
- {{ .Values.node.grace | quote }}
- --default-policy
- {{ .Values.node.defaultPolicy | quote }}
{{- range .Values.node.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
{{- define "trustmirror.nodeContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}
{{- define "trustmirror.nodeVolumeMounts" -}}
- {name: node-dir, mountPath: {{ .Values.node.hostPath | quote }}}
- {name: root, mountPath: /etc/trustmirror/root, readOnly: true}
{{- if .Values.node.policy }}
- {name: policy, mountPath: /etc/trustmirror/policy, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
{{- end -}}
