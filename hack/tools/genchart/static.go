package main

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// static adds the chart's files that have no counterpart in config/: Chart.yaml, values.yaml (with the defaults
// read from config/), the helpers, the optional ServiceMonitor (config/ does not assume the Prometheus operator) and
// NOTES.txt.
func (c *chart) static() error {
	c.files["Chart.yaml"] = generatedHeader + fmt.Sprintf(`apiVersion: v2
name: preftune
description: Preference tuning (SFT then DPO) on Kubernetes - the Preftune operator, its CRDs and RBAC.
type: application
version: 0.1.0
appVersion: %q
kubeVersion: ">=1.30.0-0"
home: https://github.com/preftune/preftune
sources:
- https://github.com/preftune/preftune
keywords:
- dpo
- fine-tuning
- operator
`, c.tag)

	vals := map[string]string{}
	for name, v := range map[string]any{
		"resources": c.resources, "securityContext": c.securityContext, "podSecurityContext": c.podSecurity,
	} {
		b, err := yaml.Marshal(map[string]any{name: v})
		if err != nil {
			return err
		}
		vals[name] = strings.TrimRight(string(b), "\n")
	}
	c.files["values.yaml"] = generatedHeader + fmt.Sprintf(valuesYAML,
		c.image, c.replicas, vals["resources"], vals["podSecurityContext"], vals["securityContext"])
	c.files["templates/_helpers.tpl"] = generatedHeader + helpers
	c.files["templates/servicemonitor.yaml"] = generatedHeader + serviceMonitor
	c.files["templates/NOTES.txt"] = notes
	c.files[".helmignore"] = generatedHeader + "*.orig\n*.bak\n*~\n"
	return nil
}

const valuesYAML = `# Defaults marked (config/) are read from config/ when the chart is generated.

image:
  # repository of the one image holding the manager (/manager) and the trainer (/preftune-trainer). (config/)
  repository: %s
  # tag defaults to the chart's appVersion.
  tag: ""
  # digest (sha256:...) pins the image; it wins over tag.
  digest: ""
  pullPolicy: IfNotPresent
imagePullSecrets: []

# replicas of the manager; with more than one, keep leader election on. (config/)
replicas: %v
leaderElection:
  enabled: true

# Resources of the manager container. (config/)
%s

# Extended resource that counts GPUs, unless a run names one (spec.resources.gpuResourceName).
gpuResourceName: nvidia.com/gpu
# Base output URI of runs without spec.output.uri: s3://, gs://, azblob://, file:// or pvc://<claim>/<path>.
# Empty: every run must set spec.output.uri.
defaultOutputURI: ""

# The trainer Jobs (dataset validation and runs).
trainer:
  image:
    # Empty: the manager's own image (it holds the trainer).
    repository: ""
    tag: ""
    digest: ""
  # Pull policy of the trainer container; empty leaves Kubernetes' default.
  imagePullPolicy: ""
  # How long finished Jobs and their pods are kept (Go duration); runs keep their status. "0s" keeps them.
  jobTTL: 1h0m0s
  # Environment variables (NAME: value) of every trainer container: a proxy, a Hub mirror (HF_ENDPOINT), a BLAS
  # kernel (OPENBLAS_CORETYPE). The operator's own variables cannot be replaced.
  env: {}

# Runs and datasets reconciled in parallel.
concurrency:
  runs: 4
  datasets: 2

# Prometheus metrics of the manager (controller-runtime), served over HTTP on this port, with a Service.
metrics:
  enabled: true
  port: 8080
  serviceMonitor:
    # Needs the Prometheus operator's ServiceMonitor CRD.
    enabled: false
    interval: 30s
    labels: {}

# A NetworkPolicy that lets in only metrics and probe traffic to the manager.
networkPolicy:
  enabled: true
  # from: who may reach the metrics and probe ports (NetworkPolicyPeer list); empty allows any source.
  from: []

# The CRDs live in templates/ (not crds/), so helm upgrade upgrades them.
crds:
  install: true
  # keep: helm uninstall leaves the CRDs, and so every PreferenceDataset, SFTRun and DPORun, in place.
  keep: true
  # annotations added to the CRDs, e.g. argocd.argoproj.io/sync-options: Prune=false (Argo CD renders the chart
  # without Helm, so it ignores helm.sh/resource-policy) or kustomize.toolkit.fluxcd.io/prune: disabled.
  annotations: {}

# Pod Security "restricted" settings of the manager pod and container. (config/)
%s
%s

podAnnotations: {}
nodeSelector: {}
tolerations: []
affinity: {}
priorityClassName: ""
# Overrides the objects' name prefix ("preftune", or "<release>-preftune").
fullnameOverride: ""
# More manager flags, e.g. --zap-log-level=debug.
extraArgs: []
`

const helpers = `{{/* Name of the release's objects: "preftune" when the release is called so, else "<release>-preftune". */}}
{{- define "preftune.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains "preftune" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-preftune" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "preftune.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "preftune.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (.tag | default .appVersion) -}}
{{- end -}}
{{- end -}}

{{- define "preftune.image" -}}
{{- include "preftune.imageRef" (dict "repository" .Values.image.repository "tag" .Values.image.tag "digest" .Values.image.digest "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "preftune.trainerImage" -}}
{{- if .Values.trainer.image.repository -}}
{{- include "preftune.imageRef" (dict "repository" .Values.trainer.image.repository "tag" .Values.trainer.image.tag "digest" .Values.trainer.image.digest "appVersion" .Chart.AppVersion) -}}
{{- else -}}
{{- include "preftune.image" . -}}
{{- end -}}
{{- end -}}
`

const serviceMonitor = `{{- if and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "preftune.fullname" . }}-controller-manager
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: preftune
    app.kubernetes.io/component: manager
    {{- include "preftune.labels" . | nindent 4 }}
    {{- with .Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: preftune
      app.kubernetes.io/component: manager
      app.kubernetes.io/instance: {{ .Release.Name }}
  endpoints:
  - port: metrics
    path: /metrics
    interval: {{ .Values.metrics.serviceMonitor.interval }}
{{- end }}
`

const notes = `Preftune {{ .Chart.AppVersion }} is installed in {{ .Release.Namespace }}.

The manager and the trainer pods pass the Pod Security "restricted" profile; enforce it with
  kubectl label namespace {{ .Release.Namespace }} pod-security.kubernetes.io/enforce=restricted

Try it: kubectl get preftune -A
{{- if .Values.crds.keep }}

The CRDs are kept on "helm uninstall" (crds.keep=true): runs, datasets and their outputs survive it.
{{- end }}
`
