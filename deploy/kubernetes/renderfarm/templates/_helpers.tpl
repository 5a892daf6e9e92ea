{{/* The name of every object of this release, with a suffix per part.
A release name may hold dots (my.farm), which a Service's name may not:
they become dashes. */}}
{{- define "renderfarm.fullname" -}}
{{- $release := .Release.Name | replace "." "-" -}}
{{- if contains .Chart.Name $release -}}
{{- $release | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" $release .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "renderfarm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one part: serve or worker. */}}
{{- define "renderfarm.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The --storage URL: the bucket, its region, endpoint and prefix. */}}
{{- define "renderfarm.storage" -}}
{{- $b := .Values.bucket -}}
{{- required "bucket.name is required: the S3 bucket renderfarm stores its files in" $b.name | printf "s3://%s" -}}
?region={{ $b.region }}
{{- with $b.endpoint }}&endpoint={{ . }}{{ end }}
{{- with $b.prefix }}&prefix={{ . }}{{ end }}
{{- end -}}

{{/* What serve and worker both read from the environment: the database
URL and the bucket's keys from their Secrets. */}}
{{- define "renderfarm.secretEnv" -}}
- name: RENDERFARM_DATABASE
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required: the Secret holding the PostgreSQL URL" .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ required "bucket.existingSecret is required: the Secret holding the bucket's keys" .Values.bucket.existingSecret }}
      key: {{ .Values.bucket.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.bucket.existingSecret }}
      key: {{ .Values.bucket.secretAccessKeyKey }}
- name: AWS_REGION
  value: {{ .Values.bucket.region | quote }}
{{- end -}}

{{/* The container security context both parts start from. */}}
{{- define "renderfarm.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: {{ .Values.securityContext.readOnlyRootFilesystem }}
{{- end -}}
