{{/* An egress or ingress rule to CIDRs (any address when none) on TCP ports:
(dict "cidrs" list "ports" list "peer" "to"|"from") */}}
{{- define "radpipe.cidrRule" -}}
{{- if .cidrs -}}
- {{ .peer }}:
    {{- range .cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
{{- else -}}
- ports:
{{- end }}
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}

{{/* Egress rules every radpipe pod needs: DNS. */}}
{{- define "radpipe.dnsEgress" -}}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{/* Egress to the artifact store (bundled MinIO pods, or the external endpoint). */}}
{{- define "radpipe.s3Egress" -}}
{{- if .Values.objectStore.minio.enabled -}}
- to:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: {{ .Release.Namespace }}}
      podSelector:
        matchLabels:
          {{- include "radpipe.selector" (dict "ctx" . "component" "minio") | nindent 10 }}
  ports:
    - {protocol: TCP, port: 9000}
{{- else -}}
{{ include "radpipe.cidrRule" (dict "cidrs" .Values.objectStore.external.cidrs "ports" (list .Values.objectStore.external.port) "peer" "to") }}
{{- end -}}
{{- end -}}

{{- define "radpipe.apiServerEgress" -}}
{{ include "radpipe.cidrRule" (dict "cidrs" .Values.networkPolicy.apiServer.cidrs "ports" .Values.networkPolicy.apiServer.ports "peer" "to") }}
{{- end -}}
