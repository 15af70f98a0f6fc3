package validation

import (
	"strings"
	"time"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// validateBallastAnnotations checks the values of Ballast's own annotations.
func validateBallastAnnotations(annotations map[string]string, name string, f func(string) string, el *ErrorList) {
	field := func(k string) string { return f("metadata.annotations[" + k + "]") }
	if v, ok := annotations[wellknown.AnnotationAfter]; ok {
		for _, dep := range strings.Split(v, ",") {
			dep = strings.TrimSpace(dep)
			switch {
			case dep == "":
				el.Addf(field(wellknown.AnnotationAfter), "Invalid value: %q: list pod names separated by commas, e.g. \"etcd,kube-apiserver\"", v)
			case dep == name:
				el.Addf(field(wellknown.AnnotationAfter), "Invalid value: %q: a pod cannot wait for itself", dep)
			default:
				if errs := utilvalidation.IsDNS1123Subdomain(dep); len(errs) > 0 {
					el.Addf(field(wellknown.AnnotationAfter), "Invalid value: %q: %s (name the pods as in their manifests' metadata.name)", dep, strings.Join(errs, "; "))
				}
			}
		}
	}
	if v, ok := annotations[wellknown.AnnotationRestartOnConfigChange]; ok && v != "true" && v != "false" {
		el.Addf(field(wellknown.AnnotationRestartOnConfigChange), "Unsupported value: %q: supported values: \"true\" (a change to the ConfigMap or Secret data its volumes show replaces the pod), \"false\" (the default: the files are updated in place)", v)
	}
	if v, ok := annotations[wellknown.AnnotationRollout]; ok && v != "replace" && v != "revert" {
		el.Addf(field(wellknown.AnnotationRollout), "Unsupported value: %q: supported values: \"revert\" (the default: a changed pod that fails goes back to the last good one), \"replace\" (never go back, as the kubelet)", v)
	}
	for _, k := range []string{wellknown.AnnotationRolloutDeadline, wellknown.AnnotationRolloutSettle} {
		if v, ok := annotations[k]; ok {
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				el.Addf(field(k), "Invalid value: %q: give a positive duration such as \"90s\" or \"5m\"", v)
			}
		}
	}
}
