{{- /* Services append -http / -dicom: stop at 56 so every name stays a
       63-character DNS label (RFC 1035) for any release name Helm accepts. */ -}}
{{- define "trialpacs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 56 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "trialpacs.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "trialpacs.env" -}}
- name: TRIALPACS_DATABASE_URL
  value: {{ .Values.database.url | quote }}
- name: TRIALPACS_STORAGE
  value: s3
- name: TRIALPACS_S3_ENDPOINT_URL
  value: {{ .Values.s3.endpointUrl | quote }}
- name: TRIALPACS_S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
- name: TRIALPACS_S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: TRIALPACS_PIPELINE_EXECUTOR
  value: celery
- name: TRIALPACS_CELERY_BROKER_URL
  value: {{ .Values.celery.brokerUrl | quote }}
- name: TRIALPACS_PUBLIC_BASE_URL
  value: {{ .Values.publicBaseUrl | quote }}
- name: TRIALPACS_LOG_FORMAT
  value: json
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}
