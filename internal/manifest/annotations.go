package manifest

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Annotations of Ballast's own that a static pod may carry to steer how the
// node runs it.
const (
	// AnnotationAfter names pods of the same node (by manifest name,
	// comma-separated) that must be Ready before this pod's containers start.
	AnnotationAfter = "ballast.dev/after"
	// AnnotationRollout "replace" opts a pod out of automatic reverts (the
	// kubelet's behaviour); "revert", the default, keeps them.
	AnnotationRollout = "ballast.dev/rollout"
	// AnnotationRolloutDeadline is how long a changed pod may take to become
	// Ready and settle before it is reverted (default 2m).
	AnnotationRolloutDeadline = "ballast.dev/rollout-deadline"
	// AnnotationRolloutSettle is how long a changed pod must stay Ready to
	// become its file's last good pod (default 5s).
	AnnotationRolloutSettle = "ballast.dev/rollout-settle"
)

// validateBallastAnnotations checks the values of Ballast's own annotations.
func validateBallastAnnotations(annotations map[string]string, name string, f func(string) string, el *errList) {
	field := func(k string) string { return f("metadata.annotations[" + k + "]") }
	if v, ok := annotations[AnnotationAfter]; ok {
		for _, dep := range strings.Split(v, ",") {
			dep = strings.TrimSpace(dep)
			switch {
			case dep == "":
				el.addf(field(AnnotationAfter), "Invalid value: %q: list pod names separated by commas, e.g. \"etcd,kube-apiserver\"", v)
			case dep == name:
				el.addf(field(AnnotationAfter), "Invalid value: %q: a pod cannot wait for itself", dep)
			default:
				if errs := validation.IsDNS1123Subdomain(dep); len(errs) > 0 {
					el.addf(field(AnnotationAfter), "Invalid value: %q: %s (name the pods as in their manifests' metadata.name)", dep, strings.Join(errs, "; "))
				}
			}
		}
	}
	if v, ok := annotations[wellknown.AnnotationRestartOnConfigChange]; ok && v != "true" && v != "false" {
		el.addf(field(wellknown.AnnotationRestartOnConfigChange), "Unsupported value: %q: supported values: \"true\" (a change to the ConfigMap or Secret data its volumes show replaces the pod), \"false\" (the default: the files are updated in place)", v)
	}
	if v, ok := annotations[AnnotationRollout]; ok && v != "replace" && v != "revert" {
		el.addf(field(AnnotationRollout), "Unsupported value: %q: supported values: \"revert\" (the default: a changed pod that fails goes back to the last good one), \"replace\" (never go back, as the kubelet)", v)
	}
	for _, k := range []string{AnnotationRolloutDeadline, AnnotationRolloutSettle} {
		if v, ok := annotations[k]; ok {
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				el.addf(field(k), "Invalid value: %q: give a positive duration such as \"90s\" or \"5m\"", v)
			}
		}
	}
}
