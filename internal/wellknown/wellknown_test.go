package wellknown

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Every name is a valid annotation/label key, and no two are the same.
func TestNamesAreValidKeys(t *testing.T) {
	names := []string{
		AnnotationConfigHash, AnnotationConfigSource, AnnotationConfigSeen, AnnotationConfigMirror,
		AnnotationManifest, AnnotationManifestError, AnnotationRolloutReverted, AnnotationDefaultContainer, AnnotationServingCertSHA256,
		LabelNodeRole, LabelNodeRolePrefix + "control-plane",
		LabelPodName, LabelPodNamespace, LabelPodUID, LabelContainerName, LabelNode,
		AnnotationRestartCount, AnnotationTermMsgPath, AnnotationTermMsgPolicy, AnnotationBackoff,
		AnnotationBackoffSince, AnnotationPod, AnnotationContainerIndex,
	}
	seen := map[string]bool{}
	for _, n := range names {
		if errs := validation.IsQualifiedName(n); len(errs) != 0 {
			t.Errorf("%q is not a valid key: %v", n, errs)
		}
		if seen[n] {
			t.Errorf("%q is declared twice", n)
		}
		seen[n] = true
	}
	for _, n := range []string{AnnotationConfigHash, AnnotationConfigSource, AnnotationConfigSeen, AnnotationConfigMirror} {
		if !strings.HasPrefix(n, ConfigAnnotationPrefix) {
			t.Errorf("%q does not start with ConfigAnnotationPrefix %q", n, ConfigAnnotationPrefix)
		}
	}
}
