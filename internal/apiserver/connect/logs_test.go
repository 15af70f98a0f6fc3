package connect

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

// TestLogNodeErrors: a node's refusal of pods/log keeps its code, with the
// reason kube-apiserver gives it (kubectl logs --previous with no previous
// instance is a 400 BadRequest).
func TestLogNodeErrors(t *testing.T) {
	for _, tc := range []struct {
		code   int
		reason metav1.StatusReason
	}{
		{400, metav1.StatusReasonBadRequest}, {404, metav1.StatusReasonNotFound}, {403, metav1.StatusReasonForbidden},
		{401, metav1.StatusReasonUnauthorized}, {500, metav1.StatusReasonInternalError}, {502, metav1.StatusReasonInternalError},
	} {
		err := nodeResponseError(tc.code, `previous terminated container "c" in pod "p" not found`, "pods/log", "p", "n1")
		st := request.ToStatus(err)
		rec := &bytes.Buffer{}
		w := &recorder{header: http.Header{}, body: rec}
		request.WriteStatus(w, st)
		if w.code != tc.code {
			t.Errorf("%d: written as %d", tc.code, w.code)
		}
		apitest.CheckStatusShape(t, rec.Bytes(), tc.code, tc.reason, "")
		if !strings.Contains(st.Message, "previous terminated container") {
			t.Errorf("%d: message %q lost the node's words", tc.code, st.Message)
		}
	}
}

type recorder struct {
	header http.Header
	body   *bytes.Buffer
	code   int
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

func (r *recorder) WriteHeader(c int) { r.code = c }
