{{/*
Names. Kubernetes names are at most 63 characters (DNS labels); every name
below is truncated to fit, without a trailing "-".
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ideapool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: fullnameOverride, else the release name, with the
chart name appended unless the release name already contains it.
*/}}
{{- define "ideapool.fullname" -}}
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

{{/*
The operator's name label. It differs from the chart name (as cert-manager's
webhook and cainjector do) because the IdeasApp's pods, made by the operator,
carry app.kubernetes.io/name=ideapool and instance=<IdeasApp name>: the two
workloads' selectors must never match each other's pods.
*/}}
{{- define "ideapool.operator.name" -}}
{{- printf "%s-operator" (include "ideapool.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the operator's Deployment, Roles and bindings. The full name is cut
first so that "-operator" always survives: otherwise a long release name
would give the operator's objects the very name of the IdeasApp's own
Deployment and ServiceAccount, which the operator then takes over.
*/}}
{{- define "ideapool.operator.fullname" -}}
{{- printf "%s-operator" (include "ideapool.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "ideapool.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ideapool.operator.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the IdeasApp, which names its Service and pods too. */}}
{{- define "ideapool.app.name" -}}
{{- default (include "ideapool.fullname" .) .Values.app.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace of the IdeasApp and of its template ConfigMap: one the operator
reconciles. The deprecated operator.watchNamespace if set; else the release's,
unless operator.watchNamespaces leaves it out, then the first of those.
*/}}
{{- define "ideapool.app.namespace" -}}
{{- $watched := include "ideapool.watchNamespaces" . }}
{{- if .Values.operator.watchNamespace }}
{{- .Values.operator.watchNamespace }}
{{- else if or (not $watched) (has .Release.Namespace (splitList "," $watched)) }}
{{- .Release.Namespace }}
{{- else }}
{{- first (splitList "," $watched) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the desired IdeasApp, applied by the operator (--app-template). */}}
{{- define "ideapool.app.templateName" -}}
{{- printf "%s-app-template" (include "ideapool.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{/* chart label: name-version, "+" is not allowed in label values. */}}
{{- define "ideapool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image both the operator and (by default) IdeasApps run. */}}
{{- define "ideapool.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Labels. Selector labels are only name and instance: they are immutable on a
Deployment, so they must not carry the version.
*/}}
{{- define "ideapool.commonLabels" -}}
helm.sh/chart: {{ include "ideapool.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ideapool
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
{{- end }}

{{/* Labels of the chart's own objects that belong to no component. */}}
{{- define "ideapool.labels" -}}
app.kubernetes.io/name: {{ include "ideapool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "ideapool.commonLabels" . }}
{{- end }}

{{/*
Labels of the helm test pod. Its name label is not the chart name: the
IdeasApp's Service selects name=ideapool and instance=<IdeasApp name>, which
is the release name by default, and the test pod must never become an
endpoint of the Service it tests.
*/}}
{{- define "ideapool.test.labels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "ideapool.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{ include "ideapool.commonLabels" . }}
{{- end }}

{{/*
Labels of the IdeasApp: the chart's, but managed by the operator, which
applies it from the template ConfigMap; Helm never touches it.
*/}}
{{- define "ideapool.app.labels" -}}
{{- merge (dict "app.kubernetes.io/managed-by" "ideapool-operator" "app.kubernetes.io/component" "app") (include "ideapool.labels" . | fromYaml) | toYaml }}
{{- end }}

{{/* Selector labels of the operator's pods. */}}
{{- define "ideapool.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ideapool.operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "ideapool.operator.labels" -}}
{{ include "ideapool.operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{ include "ideapool.commonLabels" . }}
{{- end }}

{{/*
The namespaces the operator watches (operator.watchNamespaces, and the
deprecated operator.watchNamespace), sorted and comma-separated; empty means
every namespace.
*/}}
{{- define "ideapool.watchNamespaces" -}}
{{- $nss := list }}
{{- range .Values.operator.watchNamespaces }}
{{- $nss = append $nss . }}
{{- end }}
{{- with .Values.operator.watchNamespace }}
{{- $nss = append $nss . }}
{{- end }}
{{- $nss | uniq | sortAlpha | join "," }}
{{- end }}

{{/*
The operator's RBAC rules: config/rbac/role.yaml (generated by `make
manifests` from the +kubebuilder:rbac markers) without leases, which only the
leader-election Role grants, in the release namespace. They go into a
ClusterRole, or with operator.watchNamespaces into a Role in each watched
namespace. What each rule is for is in the README ("What the operator may
do").
*/}}
{{- define "ideapool.operator.rules" -}}
# The children of every IdeasApp: its keyset Secret, ConfigMap NAME-config,
# ServiceAccount, Service and SQLite volume. Secrets and ConfigMaps are cached
# only when labelled managed-by=ideapool-operator; a TLS Secret is looked at
# as metadata only.
- apiGroups: [""]
  resources: [configmaps, persistentvolumeclaims, secrets, serviceaccounts, services]
  verbs: [create, get, list, patch, update, watch]
# Events on IdeasApps (key changes, conflicts, missing APIs).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# The server's Deployment.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, get, list, patch, update, watch]
# cert-manager Certificates of spec.tls.certManager (when that API exists).
- apiGroups: [cert-manager.io]
  resources: [certificates]
  verbs: [create, delete, get, patch, update]
# HTTPRoutes of spec.expose.gateway (when that API exists).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [create, delete, get, patch, update]
# The IdeasApps themselves: read the spec, write the status; create and patch
# the chart's IdeasApp from its template ConfigMap (--app-template).
- apiGroups: [ideapool.dev]
  resources: [ideasapps]
  verbs: [create, get, list, patch, watch]
- apiGroups: [ideapool.dev]
  resources: [ideasapps/finalizers]
  verbs: [update]
- apiGroups: [ideapool.dev]
  resources: [ideasapps/status]
  verbs: [get, patch, update]
# ServiceMonitors of spec.metrics.serviceMonitor (when that API exists).
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [create, delete, get, patch, update]
# Ingresses of spec.expose.ingress (read uncached, like the kinds above).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [create, delete, get, patch, update]
# PodDisruptionBudgets of IdeasApps with more than one replica.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [create, delete, get, list, patch, update, watch]
# The Role and RoleBinding that let each IdeasApp's pods read exactly its
# keyset Secret and ConfigMap. (Granting a Role needs the rights it grants:
# the operator's get/list/watch on Secrets and ConfigMaps.)
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings, roles]
  verbs: [create, get, list, patch, update, watch]
{{- end }}
