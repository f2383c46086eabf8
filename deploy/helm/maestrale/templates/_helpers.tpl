{{/* Names, labels and the pod settings every Maestrale workload shares. */}}

{{- define "maestrale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "maestrale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "maestrale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maestrale.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "maestrale.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "maestrale.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "maestrale.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "maestrale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "maestrale.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "maestrale.secretName" -}}
{{- default (printf "%s-secrets" (include "maestrale.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "maestrale.configName" -}}
{{- printf "%s-config" (include "maestrale.fullname" .) }}
{{- end }}

{{/* Pod-level security: non-root user and group, RuntimeDefault seccomp. */}}
{{- define "maestrale.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
fsGroup: {{ .Values.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security, complete on its own (see src/maestrale/deploy/pod.py). */}}
{{- define "maestrale.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Writable places on the read-only root: /tmp (Python, the fork server) and MAESTRALE_HOME. */}}
{{- define "maestrale.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: home
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{- define "maestrale.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/maestrale
{{- end }}

{{/* MAESTRALE_* settings: the ConfigMap, then each credential from the Secret by its key. */}}
{{- define "maestrale.env" -}}
- name: MAESTRALE_HOME
  value: /var/lib/maestrale
- name: PYTHONUNBUFFERED
  value: "1"
- name: MAESTRALE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "maestrale.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: MAESTRALE_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "maestrale.secretName" . }}
      key: {{ .Values.secrets.keys.brokerUrl }}
- name: MAESTRALE_STORAGE_OPTIONS
  valueFrom:
    secretKeyRef:
      name: {{ include "maestrale.secretName" . }}
      key: {{ .Values.secrets.keys.storageOptions }}
      optional: true
- name: MAESTRALE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "maestrale.secretName" . }}
      key: {{ .Values.secrets.keys.token }}
      optional: true
{{- end }}

{{- define "maestrale.envFrom" -}}
- configMapRef:
    name: {{ include "maestrale.configName" . }}
{{- end }}

{{/* Scheduling and image pull settings shared by every pod; `.component` may override them. */}}
{{- define "maestrale.podScheduling" -}}
{{- $c := .component }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.nodeSelector $c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.tolerations $c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.affinity $c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "maestrale.podMetadata" -}}
labels:
  {{- include "maestrale.selectorLabels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include (print .root.Template.BasePath "/config.yaml") .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .extraAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
A Deployment running one maestrale command. Arguments (a dict):
  root       the chart context
  component  api | worker | monitor | relay | serve-<name>
  values     the component's values (resources, replicas, nodeSelector, …)
  args       the command line after `maestrale`
  replicas   replica count, or nil when an autoscaler owns it
  port       container port named http, or nil
  probes     probe YAML (string), or ""
  grace      terminationGracePeriodSeconds
  strategy   Deployment strategy type (RollingUpdate | Recreate)
  extraAnnotations, extraVolumes, extraMounts  optional
*/}}
{{- define "maestrale.deployment" -}}
{{- $root := .root }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "maestrale.fullname" $root }}-{{ .component }}
  labels:
    {{- include "maestrale.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .replicas) }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: {{ default "RollingUpdate" .strategy }}
    {{- if ne (default "RollingUpdate" .strategy) "Recreate" }}
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
    {{- end }}
  selector:
    matchLabels:
      {{- include "maestrale.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      {{- include "maestrale.podMetadata" . | nindent 6 }}
    spec:
      serviceAccountName: {{ include "maestrale.serviceAccountName" $root }}
      automountServiceAccountToken: false
      securityContext:
        {{- include "maestrale.podSecurityContext" $root | nindent 8 }}
      terminationGracePeriodSeconds: {{ default 30 .grace }}
      {{- include "maestrale.podScheduling" (dict "root" $root "component" .values) | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "maestrale.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          {{- if .port }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
            {{- if .grpcPort }}
            - name: grpc
              containerPort: {{ .grpcPort }}
              protocol: TCP
            {{- end }}
          {{- end }}
          env:
            {{- include "maestrale.env" $root | nindent 12 }}
          envFrom:
            {{- include "maestrale.envFrom" $root | nindent 12 }}
          {{- with .probes }}
          {{- . | nindent 10 }}
          {{- end }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "maestrale.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "maestrale.volumeMounts" $root | nindent 12 }}
            {{- with .extraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "maestrale.volumes" $root | nindent 8 }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}

{{/* HTTP probes: path and port for liveness and readiness; startup allows a slow first load. */}}
{{- define "maestrale.probes" -}}
startupProbe:
  httpGet: {path: {{ .live }}, port: http}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet: {path: {{ .live }}, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: {{ .ready }}, port: http}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}
