{{/* Names, labels and the checks values.schema.json cannot express. */}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- end -}}

{{/* Selector of one component (and group): never the whole release, never the namespace. */}}
{{- define "switchyard.selector" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .group }}
switchyard.io/group: {{ .group }}
{{- end }}
{{- end -}}

{{- define "switchyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Environment every service shares: model, NATS. */}}
{{- define "switchyard.commonEnv" -}}
- name: SWITCHYARD_MODEL_DIR
  value: {{ .Values.model.dir | quote }}
- name: SWITCHYARD_NATS
  value: {{ .Values.nats.url | quote }}
- name: SWITCHYARD_SUBJECT_PREFIX
  value: {{ .Values.nats.subjectPrefix | quote }}
- name: SWITCHYARD_LOG_FORMAT
  value: {{ .Values.logs.format | quote }}
- name: SWITCHYARD_LOG_LEVEL
  value: {{ .Values.logs.level | quote }}
{{- if .Values.tracing.otlpEndpoint }}
- name: SWITCHYARD_OTLP_ENDPOINT
  value: {{ .Values.tracing.otlpEndpoint | quote }}
{{- end }}
{{- if .Values.nats.credentials.existingSecret }}
- name: SWITCHYARD_NATS_CREDS
  value: /etc/switchyard/nats/{{ .Values.nats.credentials.key }}
{{- end }}
{{- end -}}

{{/*
A role's NATS user (nats.users) and, for schedulers and workers, the data plane's
cluster secret. Called with (dict "root" $ "role" "gateway"|"scheduler"|"worker").
*/}}
{{- define "switchyard.roleEnv" -}}
{{- $v := .root.Values -}}
{{- if $v.nats.users.existingSecret }}
- name: SWITCHYARD_NATS_USER
  value: {{ index $v.nats.users .role | quote }}
- name: SWITCHYARD_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.nats.users.existingSecret }}
      key: {{ .role }}
{{- end }}
{{- if ne .role "gateway" }}
- name: SWITCHYARD_CLUSTER_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.clusterSecretName" .root }}
      key: {{ $v.clusterSecret.key }}
{{- end }}
{{- end -}}

{{/* The Secret holding the data plane's cluster secret: the one given, or the chart's generated one. */}}
{{- define "switchyard.clusterSecretName" -}}
{{- default (printf "%s-cluster-secret" (include "switchyard.fullname" .)) .Values.clusterSecret.existingSecret -}}
{{- end -}}

{{/* Volumes every service shares: a writable /tmp (the root filesystem is read-only), NATS credentials, the model volume. */}}
{{- define "switchyard.commonVolumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.nats.credentials.existingSecret }}
- name: nats-creds
  secret:
    secretName: {{ .Values.nats.credentials.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if .Values.model.volume }}
- name: model
  {{- toYaml .Values.model.volume | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "switchyard.commonMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.nats.credentials.existingSecret }}
- name: nats-creds
  mountPath: /etc/switchyard/nats
  readOnly: true
{{- end }}
{{- if .Values.model.volume }}
- name: model
  mountPath: {{ .Values.model.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Cross-field checks, with a message naming the value (rendered once, from NOTES/all templates). */}}
{{- define "switchyard.validate" -}}
{{- $v := .Values -}}
{{- $seen := dict -}}
{{- range $i, $g := $v.groups -}}
{{- if hasKey $seen $g.name -}}
{{- fail (printf "groups[%d].name %q is used twice: every serving group needs its own name" $i $g.name) -}}
{{- end -}}
{{- $_ := set $seen $g.name true -}}
{{- end -}}
{{- if and $v.gateway.autoscaling.enabled $v.gateway.autoscaling.keda.enabled -}}
{{- fail "gateway.autoscaling.enabled and gateway.autoscaling.keda.enabled are both true: choose the HPA or KEDA, not both (they would fight over gateway replicas)" -}}
{{- end -}}
{{- if gt (int $v.gateway.autoscaling.minReplicas) (int $v.gateway.autoscaling.maxReplicas) -}}
{{- fail (printf "gateway.autoscaling.minReplicas (%d) must be <= gateway.autoscaling.maxReplicas (%d)" (int $v.gateway.autoscaling.minReplicas) (int $v.gateway.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- $gwReplicas := ternary (int $v.gateway.autoscaling.minReplicas) (int $v.gateway.replicas) (or $v.gateway.autoscaling.enabled $v.gateway.autoscaling.keda.enabled) -}}
{{- if and $v.gateway.pdb.enabled (lt $gwReplicas 2) -}}
{{- fail (printf "gateway.pdb.enabled needs at least 2 gateway replicas (gateway.replicas or gateway.autoscaling.minReplicas is %d): with one, the PodDisruptionBudget would block every node drain" $gwReplicas) -}}
{{- end -}}
{{- if and $v.gateway.pdb.enabled (ge (int $v.gateway.pdb.maxUnavailable) $gwReplicas) -}}
{{- fail (printf "gateway.pdb.maxUnavailable (%d) must be below the gateway replicas (%d), or the budget protects nothing" (int $v.gateway.pdb.maxUnavailable) $gwReplicas) -}}
{{- end -}}
{{- $ports := list (int $v.gateway.port) (int $v.gateway.metricsPort) -}}
{{- if gt (int $v.gateway.httpPort) 0 -}}{{- $ports = append $ports (int $v.gateway.httpPort) -}}{{- end -}}
{{- if ne (len $ports) (len (uniq $ports)) -}}
{{- fail (printf "gateway.port, gateway.httpPort and gateway.metricsPort must differ (got %v)" $ports) -}}
{{- end -}}
{{- if eq (int $v.worker.port) (int $v.worker.metricsPort) -}}
{{- fail (printf "worker.port and worker.metricsPort must differ (both %d)" (int $v.worker.port)) -}}
{{- end -}}
{{- if eq (int $v.scheduler.healthPort) (int $v.scheduler.metricsPort) -}}
{{- fail (printf "scheduler.healthPort and scheduler.metricsPort must differ (both %d)" (int $v.scheduler.healthPort)) -}}
{{- end -}}
{{- if and $v.model.volume (not (hasPrefix (printf "%s/" (trimSuffix "/" $v.model.mountPath)) $v.model.dir)) -}}
{{- fail (printf "model.dir %q must be under model.mountPath %q when model.volume is set (the model comes from that volume)" $v.model.dir $v.model.mountPath) -}}
{{- end -}}
{{- if and (not $v.nats.credentials.existingSecret) (regexMatch "^[a-z]+://[^/@]+:[^/@]+@" $v.nats.url) -}}
{{- fail "nats.url carries a password: put NATS credentials in a Secret (nats.credentials.existingSecret) instead of the values" -}}
{{- end -}}
{{- end -}}

{{/* A pod's labels: the common ones plus its component (and group); a superset of its selector. */}}
{{- define "switchyard.podLabels" -}}
{{ include "switchyard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- if .group }}
switchyard.io/group: {{ .group }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy ingress rule for a pod's metrics port: from networkPolicy.metricsFrom, or the namespace. */}}
{{- define "switchyard.metricsIngress" -}}
- ports:
    - port: metrics
      protocol: TCP
  from:
    {{- if .Values.networkPolicy.metricsFrom }}
    {{- toYaml .Values.networkPolicy.metricsFrom | nindent 4 }}
    {{- else }}
    - podSelector: {}
    {{- end }}
{{- end -}}
