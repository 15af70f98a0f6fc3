package manifest

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/ballast-dev/ballast/internal/manifest/decode"
	"github.com/ballast-dev/ballast/internal/validation"
)

// validatePod validates a pod decoded from a manifest as Kubernetes
// validates a pod (for the fields this version supports), before defaults.
// prefix is the field path of the pod in the file ("" or "items[i]").
func validatePod(pod *corev1.Pod, prefix, nodeName string, el *errList) {
	f := func(p string) string { return decode.JoinField(prefix, p) }
	var errs validation.ErrorList

	// The name in a file is the static pod's: the node adds "-<node>".
	switch {
	case pod.Name == "":
		errs.Add(f("metadata.name"), "Required value: set metadata.name; the pod runs as <name>-<node name>")
	default:
		errs.Invalid(f("metadata.name"), pod.Name, utilvalidation.IsDNS1123Subdomain(pod.Name), "")
		full := PodName(pod.Name, nodeName)
		if len(full) > utilvalidation.DNS1123SubdomainMaxLength {
			errs.Addf(f("metadata.name"), "Too long: the pod name %q (name-node) is %d characters, at most %d are allowed; shorten metadata.name",
				full, len(full), utilvalidation.DNS1123SubdomainMaxLength)
		} else if len(utilvalidation.IsDNS1123Subdomain(pod.Name)) == 0 {
			errs.Invalid(f("metadata.name"), full, utilvalidation.IsDNS1123Subdomain(full), " (the pod name is <name>-<node name>)")
		}
	}
	if pod.Spec.NodeName != "" && !strings.EqualFold(pod.Spec.NodeName, nodeName) {
		errs.Addf(f("spec.nodeName"), "Invalid value: %q: this node is %q; a static pod runs on the node whose directory holds it, remove spec.nodeName", pod.Spec.NodeName, nodeName)
	}
	el.addAll(errs)
	el.addAll(validation.ValidatePodContent(pod, prefix))
}
