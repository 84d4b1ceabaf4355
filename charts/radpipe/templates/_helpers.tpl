{{/* Names, labels, images and shared pod settings. */}}

{{- define "radpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "radpipe.fullname" -}}
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

{{- define "radpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "radpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: radpipe
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator") */}}
{{- define "radpipe.selector" -}}
app.kubernetes.io/name: {{ include "radpipe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "radpipe.componentLabels" -}}
{{ include "radpipe.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: (dict "ctx" $ "image" .Values.operator.image "suffix" "") */}}
{{- define "radpipe.image" -}}
{{- $registry := .ctx.Values.image.registry -}}
{{- $tag := default (printf "%s%s" .ctx.Chart.AppVersion (default "" .suffix)) .image.tag -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "radpipe.jobNamespaces" -}}
{{- if .Values.jobNamespaces -}}
{{- toJson .Values.jobNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{- define "radpipe.webJobNamespace" -}}
{{- if .Values.web.jobNamespace -}}
{{- .Values.web.jobNamespace -}}
{{- else -}}
{{- first (fromJsonArray (include "radpipe.jobNamespaces" .)) -}}
{{- end -}}
{{- end -}}

{{/* The InferenceServices' namespace. Stage pods resolve an app's model references
(bare InferenceService names) in the AnalysisJob's own namespace, so it must be a job
namespace: by default the web app's. */}}
{{- define "radpipe.modelsNamespace" -}}
{{- $ns := default (include "radpipe.webJobNamespace" .) .Values.models.namespace -}}
{{- if not (has $ns (fromJsonArray (include "radpipe.jobNamespaces" .))) -}}
{{- fail (printf "models.namespace %q is not one of the job namespaces %v: radpipe looks InferenceServices up in the AnalysisJob's namespace" $ns (include "radpipe.jobNamespaces" .)) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* The namespace the receiver creates AnalysisJobs in: a job namespace (the operator
watches those, and the stage env Secret is there). */}}
{{- define "radpipe.intakeJobNamespace" -}}
{{- $ns := default (include "radpipe.webJobNamespace" .) .Values.intake.jobNamespace -}}
{{- if not (has $ns (fromJsonArray (include "radpipe.jobNamespaces" .))) -}}
{{- fail (printf "intake.jobNamespace %q is not one of the job namespaces %v: the operator runs AnalysisJobs there only" $ns (include "radpipe.jobNamespaces" .)) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{- define "radpipe.operatorAccount" -}}{{ include "radpipe.fullname" . }}-operator{{- end -}}
{{- define "radpipe.stageAccount" -}}{{ include "radpipe.fullname" . }}-stage-runner{{- end -}}
{{- define "radpipe.webAccount" -}}{{ include "radpipe.fullname" . }}-web{{- end -}}
{{- define "radpipe.modelsAccount" -}}{{ include "radpipe.fullname" . }}-models{{- end -}}
{{- define "radpipe.intakeAccount" -}}{{ include "radpipe.fullname" . }}-intake{{- end -}}
{{- define "radpipe.stageEnvSecret" -}}{{ include "radpipe.fullname" . }}-stage-env{{- end -}}
{{- define "radpipe.configMap" -}}{{ include "radpipe.fullname" . }}-config{{- end -}}
{{- define "radpipe.minio" -}}{{ include "radpipe.fullname" . }}-minio{{- end -}}

{{- define "radpipe.modelsS3Secret" -}}
{{- default (printf "%s-models-s3" (include "radpipe.fullname" .)) .Values.models.storage.existingSecret -}}
{{- end -}}

{{- define "radpipe.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "radpipe.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* host:port of the S3 API the pods use. */}}
{{- define "radpipe.s3Endpoint" -}}
{{- if .Values.objectStore.minio.enabled -}}
{{- printf "%s.%s.svc:9000" (include "radpipe.minio" .) .Release.Namespace -}}
{{- else -}}
{{- required "objectStore.external.endpoint is required when objectStore.minio.enabled is false" .Values.objectStore.external.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "radpipe.s3Secure" -}}
{{- if .Values.objectStore.minio.enabled -}}false{{- else -}}{{ .Values.objectStore.external.secure }}{{- end -}}
{{- end -}}

{{/* The store section of radpipe's configuration (no credentials). */}}
{{- define "radpipe.storeConfig" -}}
{{- $s3 := dict "endpoint" (include "radpipe.s3Endpoint" .) "bucket" .Values.objectStore.bucket "secure" (eq (include "radpipe.s3Secure" .) "true") "prefix" .Values.objectStore.prefix -}}
{{- if and (not .Values.objectStore.minio.enabled) .Values.objectStore.external.region -}}
{{- $_ := set $s3 "region" .Values.objectStore.external.region -}}
{{- end -}}
{{- toJson (dict "backend" "s3" "s3" $s3) -}}
{{- end -}}

{{/* Pod-level security context of the restricted Pod Security Standard. */}}
{{- define "radpipe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "radpipe.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "radpipe.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Environment shared by the operator and the web app: config file + credentials. */}}
{{- define "radpipe.commonEnv" -}}
- name: RADPIPE_CONFIG
  value: /etc/radpipe/radpipe.yaml
- name: RADPIPE_STORE__S3__ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "radpipe.credentialsSecret" . }}, key: s3-access-key}
- name: RADPIPE_STORE__S3__SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "radpipe.credentialsSecret" . }}, key: s3-secret-key}
- name: RADPIPE_WAREHOUSE__URL
  valueFrom:
    secretKeyRef: {name: {{ include "radpipe.credentialsSecret" . }}, key: warehouse-url, optional: true}
- name: HOME
  value: /tmp
{{- end -}}
