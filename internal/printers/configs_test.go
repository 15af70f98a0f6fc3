package printers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

func TestPrintConfigs(t *testing.T) {
	cms := []corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{
			wellknown.AnnotationManifest: "/m/web.yaml", wellknown.AnnotationUsedBy: "default/web-n1"}},
			Data: map[string]string{"a": "1", "b": "2"}, BinaryData: map[string][]byte{"c": {0}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "absent", Annotations: map[string]string{
			wellknown.AnnotationConfigMissing: "referenced by pods, but no manifest file defines it", wellknown.AnnotationUsedBy: "default/web-n1"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "other", Annotations: map[string]string{wellknown.AnnotationManifest: "/m/o.yaml"}}},
	}
	var b strings.Builder
	if err := PrintConfigMaps(&b, cms, ""); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE     NAME     DATA   FILE          USED BY
default       absent   0      <missing>     default/web-n1
default       web      3      /m/web.yaml   default/web-n1
kube-system   other    0      /m/o.yaml     <none>
missing: default/absent is referenced by pods, but no manifest file defines it
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	secrets := []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "creds", Annotations: map[string]string{
		wellknown.AnnotationManifest: "/m/s.yaml", wellknown.AnnotationFileWarning: "/m/s.yaml holds Secrets and is readable by group or others"}},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": {}}}}
	if err := PrintSecrets(&b, secrets, "default"); err != nil {
		t.Fatal(err)
	}
	want = `NAME    TYPE     DATA   FILE        USED BY
creds   Opaque   1      /m/s.yaml   <none>
warning: /m/s.yaml holds Secrets and is readable by group or others
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := PrintSecrets(&b, secrets, "kube-system"); err != nil || !strings.HasPrefix(b.String(), "No Secrets on this node") {
		t.Errorf("empty: %q %v", b.String(), err)
	}
}
