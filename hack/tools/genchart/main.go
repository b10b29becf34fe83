// Command genchart writes charts/preftune from config/default, so the chart and the kustomize manifests cannot
// drift: it builds config/default with kustomize's own library (pinned in hack/tools/go.mod, so the output does not
// depend on the kubectl installed), then turns each object into a Helm template by replacing placeholders with
// template expressions. Defaults in values.yaml (image, replicas, resources, security contexts) are read from the
// same objects.
//
// Usage (from the repository root, see hack/gen-chart.sh): go run ./genchart -config ../../config/default -out ../../charts/preftune
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

func main() {
	configDir := flag.String("config", "config/default", "kustomization to render")
	out := flag.String("out", "charts/preftune", "chart directory to (re)write")
	flag.Parse()
	if err := run(*configDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "genchart:", err)
		os.Exit(1)
	}
}

func run(configDir, out string) error {
	objs, err := build(configDir)
	if err != nil {
		return err
	}
	c, err := convert(objs)
	if err != nil {
		return err
	}
	// The chart is wholly generated: remove what a previous run wrote so renamed objects leave nothing behind.
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	for name, text := range c.files {
		p := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// build runs kustomize on configDir and returns its objects in kustomize's order.
func build(configDir string) ([]map[string]any, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), configDir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", configDir, err)
	}
	var objs []map[string]any
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		objs = append(objs, m)
	}
	return objs, nil
}

// Placeholders. Inline tokens are replaced wherever they occur; a block key (blockKey+name, sorted last in its map
// by the YAML encoder, which sorts keys) is replaced, with its line, by a block template indented like the key.
const (
	tokFullname  = "__FULLNAME__"
	tokNamespace = "__NAMESPACE__"
	tokReplicas  = "__REPLICAS__"
	tokImage     = "__IMAGE__"
	tokPull      = "__PULLPOLICY__"
	blockKey     = "zzz_tpl_"
)

var inline = map[string]string{
	tokFullname:  `{{ include "preftune.fullname" . }}`,
	tokNamespace: `{{ .Release.Namespace }}`,
	tokReplicas:  `{{ .Values.replicas }}`,
	tokImage:     `{{ include "preftune.image" . | quote }}`,
	tokPull:      `{{ .Values.image.pullPolicy }}`,
}

// blocks are the block templates; each line is indented to the placeholder key's column.
var blocks = map[string]string{
	"labels": `{{- include "preftune.labels" . | nindent INDENT }}`,
	"crdkeep": `{{- if .Values.crds.keep }}
helm.sh/resource-policy: keep
{{- end }}
{{- with .Values.crds.annotations }}
{{- toYaml . | nindent INDENT }}
{{- end }}`,
	"resources":          `resources: {{- toYaml .Values.resources | nindent INDENT2 }}`,
	"securityContext":    `securityContext: {{- toYaml .Values.securityContext | nindent INDENT2 }}`,
	"podSecurityContext": `securityContext: {{- toYaml .Values.podSecurityContext | nindent INDENT2 }}`,
	"podScheduling": `{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent INDENT2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent INDENT2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent INDENT2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent INDENT2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}`,
	"podAnnotations": `{{- with .Values.podAnnotations }}
annotations: {{- toYaml . | nindent INDENT2 }}
{{- end }}`,
	"metricsPort": `port: {{ .Values.metrics.port }}`,
	"networkPolicyFrom": `{{- with .Values.networkPolicy.from }}
from: {{- toYaml . | nindent INDENT2 }}
{{- end }}`,
	"metricsContainerPort": `containerPort: {{ .Values.metrics.port }}`,
}

// conditions wrap whole documents of a kind, or of kind/name, in a values switch.
var conditions = map[string]string{
	"CustomResourceDefinition":                    ".Values.crds.install",
	"Service/preftune-controller-manager-metrics": ".Values.metrics.enabled",
	"NetworkPolicy":                               ".Values.networkPolicy.enabled",
}

type chart struct {
	files map[string]string
	names map[string]bool
	// defaults read from the manager Deployment for values.yaml.
	image, tag       string
	replicas         any
	resources        any
	securityContext  any
	podSecurity      any
	namespaceDropped string
}

func convert(objs []map[string]any) (*chart, error) {
	c := &chart{files: map[string]string{}}
	// Names kustomize prefixed: references to them (roleRef, subjects, serviceAccountName) get the release's name.
	names := map[string]bool{}
	c.names = names
	namespace := ""
	for _, o := range objs {
		if kind(o) == "Namespace" {
			namespace = str(o, "metadata", "name")
			continue
		}
		if n := str(o, "metadata", "name"); strings.HasPrefix(n, "preftune-") {
			names[n] = true
		}
	}
	if namespace == "" {
		return nil, fmt.Errorf("config/default has no Namespace")
	}
	for _, o := range objs {
		k := kind(o)
		if k == "Namespace" {
			// Helm installs into the release's namespace (helm install -n NS --create-namespace); the docs say to
			// label it for Pod Security, as config/manager's Namespace is.
			c.namespaceDropped = namespace
			continue
		}
		origFullName := str(o, "metadata", "name")
		origName := strings.TrimPrefix(origFullName, "preftune-")
		rewriteRefs(o, names, namespace)
		md := o["metadata"].(map[string]any)
		labels, _ := md["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels[blockKey+"labels"] = ""
		md["labels"] = labels
		var file string
		switch k {
		case "CustomResourceDefinition":
			ann, _ := md["annotations"].(map[string]any)
			if ann == nil {
				ann = map[string]any{}
			}
			ann[blockKey+"crdkeep"] = ""
			md["annotations"] = ann
			file = "templates/crds/" + str(o, "metadata", "name") + ".yaml"
		case "Deployment":
			if err := c.deployment(o); err != nil {
				return nil, err
			}
			file = "templates/deployment.yaml"
		case "Service":
			for _, p := range list(o, "spec", "ports") {
				if p.(map[string]any)["name"] == "metrics" {
					delete(p.(map[string]any), "port")
					p.(map[string]any)[blockKey+"metricsPort"] = ""
				}
			}
			file = "templates/service-" + origName + ".yaml"
		case "NetworkPolicy":
			// values' networkPolicy.from restricts the rules config/ leaves open to any source.
			for _, r := range list(o, "spec", "ingress") {
				if _, ok := r.(map[string]any)["from"]; !ok {
					r.(map[string]any)[blockKey+"networkPolicyFrom"] = ""
				}
			}
			file = "templates/networkpolicy.yaml"
		default:
			file = "templates/" + strings.ToLower(k) + "-" + origName + ".yaml"
		}
		text, err := render(o)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", k, str(o, "metadata", "name"), err)
		}
		cond, ok := conditions[k]
		if !ok {
			cond, ok = conditions[k+"/"+origFullName]
		}
		if ok {
			text = "{{- if " + cond + " }}\n" + text + "{{- end }}\n"
		}
		if _, dup := c.files[file]; dup {
			return nil, fmt.Errorf("two objects map to %s", file)
		}
		c.files[file] = generatedHeader + text
	}
	if c.image == "" {
		return nil, fmt.Errorf("config/default has no manager Deployment")
	}
	return c, c.static()
}

const generatedHeader = "# Generated by hack/gen-chart.sh from config/: do not edit.\n"

// deployment templates the manager Deployment and records its defaults for values.yaml.
func (c *chart) deployment(o map[string]any) error {
	spec := o["spec"].(map[string]any)
	c.replicas = spec["replicas"]
	spec["replicas"] = tokReplicas
	tmpl := spec["template"].(map[string]any)
	tmd := tmpl["metadata"].(map[string]any)
	tmd[blockKey+"podAnnotations"] = ""
	pod := tmpl["spec"].(map[string]any)
	c.podSecurity = pod["securityContext"]
	delete(pod, "securityContext")
	pod[blockKey+"podSecurityContext"] = ""
	pod[blockKey+"podScheduling"] = ""
	containers := pod["containers"].([]any)
	if len(containers) != 1 {
		return fmt.Errorf("manager Deployment: want 1 container, got %d", len(containers))
	}
	ctr := containers[0].(map[string]any)
	image, _ := ctr["image"].(string)
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return fmt.Errorf("manager image %q has no tag", image)
	}
	c.image, c.tag = image[:i], image[i+1:]
	ctr["image"] = tokImage
	ctr["imagePullPolicy"] = tokPull
	args, err := templateArgs(ctr["args"], c.names)
	if err != nil {
		return err
	}
	blocks["args"] = args
	delete(ctr, "args")
	ctr[blockKey+"args"] = ""
	c.resources = ctr["resources"]
	delete(ctr, "resources")
	ctr[blockKey+"resources"] = ""
	c.securityContext = ctr["securityContext"]
	delete(ctr, "securityContext")
	ctr[blockKey+"securityContext"] = ""
	for _, p := range ctr["ports"].([]any) {
		if p.(map[string]any)["name"] == "metrics" {
			delete(p.(map[string]any), "containerPort")
			p.(map[string]any)[blockKey+"metricsContainerPort"] = ""
		}
	}
	return nil
}

// rewriteRefs replaces the kustomize namespace and prefixed names with their template tokens, wherever they occur
// as a namespace or name field.
func rewriteRefs(v any, names map[string]bool, namespace string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			s, isStr := x.(string)
			switch {
			case isStr && k == "namespace" && s == namespace:
				t[k] = tokNamespace
			case isStr && (k == "name" || k == "serviceAccountName") && names[s]:
				t[k] = tokFullname + strings.TrimPrefix(s, "preftune")
			default:
				rewriteRefs(x, names, namespace)
			}
		}
	case []any:
		for _, x := range t {
			rewriteRefs(x, names, namespace)
		}
	}
}

var blockLine = regexp.MustCompile(`^(\s*)(- )?` + blockKey + `(\w+): ""$`)

// render marshals an object and substitutes its placeholders.
func render(o map[string]any) (string, error) {
	b, err := yaml.Marshal(o)
	if err != nil {
		return "", err
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		m := blockLine.FindStringSubmatch(line)
		if m == nil {
			for tok, expr := range inline {
				line = strings.ReplaceAll(line, tok, expr)
			}
			if strings.Contains(line, "__") && strings.Contains(line, "zzz_tpl") {
				return "", fmt.Errorf("unreplaced placeholder in %q", line)
			}
			out = append(out, line)
			continue
		}
		if m[2] != "" {
			return "", fmt.Errorf("placeholder %s is the first key of a list item", m[3])
		}
		block, ok := blocks[m[3]]
		if !ok {
			return "", fmt.Errorf("unknown placeholder %s", m[3])
		}
		indent := m[1]
		block = strings.ReplaceAll(block, "INDENT2", fmt.Sprint(len(indent)+2))
		block = strings.ReplaceAll(block, "INDENT", fmt.Sprint(len(indent)))
		for _, bl := range strings.Split(block, "\n") {
			for tok, expr := range inline {
				bl = strings.ReplaceAll(bl, tok, expr)
			}
			out = append(out, indent+bl)
		}
	}
	return strings.Join(out, "\n") + "\n", nil
}

func kind(o map[string]any) string { s, _ := o["kind"].(string); return s }

func str(o map[string]any, path ...string) string {
	var v any = o
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func list(o map[string]any, path ...string) []any {
	var v any = o
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	l, _ := v.([]any)
	return l
}
