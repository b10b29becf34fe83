package main

import (
	"fmt"
	"strings"
)

// valueFlags are the manager flags the chart sets from values. A flag config/ sets is replaced in place; one it does
// not set is added after config/'s flags. Flags config/ sets that are not listed here are kept as they are, so a
// flag added to config/manager reaches the chart without a change here.
var valueFlags = []struct{ flag, tmpl string }{
	{"--leader-elect", `{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- end }}`},
	{"--metrics-bind-address", `- {{ printf "--metrics-bind-address=%s" (ternary (printf ":%v" .Values.metrics.port) "0" .Values.metrics.enabled) | quote }}`},
	{"--trainer-image", `- {{ printf "--trainer-image=%s" (include "preftune.trainerImage" .) | quote }}`},
	{"--trainer-image-pull-policy", `{{- with .Values.trainer.imagePullPolicy }}
- {{ printf "--trainer-image-pull-policy=%s" . | quote }}
{{- end }}`},
	{"--job-ttl", `- {{ printf "--job-ttl=%s" .Values.trainer.jobTTL | quote }}`},
	{"--trainer-env", `{{- range $name, $value := .Values.trainer.env }}
- {{ printf "--trainer-env=%s=%s" $name $value | quote }}
{{- end }}`},
	{"--gpu-resource-name", `- {{ printf "--gpu-resource-name=%s" .Values.gpuResourceName | quote }}`},
	{"--default-output-uri", `{{- with .Values.defaultOutputURI }}
- {{ printf "--default-output-uri=%s" . | quote }}
{{- end }}`},
	{"--max-concurrent-reconciles", `- {{ printf "--max-concurrent-reconciles=%v" .Values.concurrency.runs | quote }}`},
	{"--max-concurrent-dataset-reconciles", `- {{ printf "--max-concurrent-dataset-reconciles=%v" .Values.concurrency.datasets | quote }}`},
}

const extraArgs = `{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}`

// templateArgs turns config/'s manager args into the args block of the chart's Deployment.
func templateArgs(v any, names map[string]bool) (string, error) {
	list, ok := v.([]any)
	if !ok && v != nil {
		return "", fmt.Errorf("manager args: want a list, got %T", v)
	}
	lines := []string{"args:"}
	done := map[string]bool{}
	for _, a := range list {
		arg, ok := a.(string)
		if !ok {
			return "", fmt.Errorf("manager arg %v is not a string", a)
		}
		flag, value, hasValue := strings.Cut(arg, "=")
		if tmpl, ok := lookupFlag(flag); ok {
			if done[flag] {
				return "", fmt.Errorf("manager flag %s is set twice in config/", flag)
			}
			done[flag] = true
			lines = append(lines, tmpl)
			continue
		}
		// A flag naming one of the objects (a Service, a Secret the manager keeps) follows the release's name.
		if hasValue && names[value] {
			lines = append(lines, fmt.Sprintf("- %s=%s%s", flag, tokFullname, strings.TrimPrefix(value, "preftune")))
			continue
		}
		lines = append(lines, "- "+quoteArg(arg))
	}
	for _, f := range valueFlags {
		if !done[f.flag] {
			lines = append(lines, f.tmpl)
		}
	}
	lines = append(lines, extraArgs)
	return strings.Join(lines, "\n"), nil
}

func lookupFlag(flag string) (string, bool) {
	for _, f := range valueFlags {
		if f.flag == flag {
			return f.tmpl, true
		}
	}
	return "", false
}

// quoteArg quotes an argument for YAML when it could be read as something other than a plain string.
func quoteArg(s string) string {
	if strings.ContainsAny(s, ":#{}[]&*!|>'\"%@`, ") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
