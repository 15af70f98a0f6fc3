package apiserver

import (
	"strings"
	"testing"
	"time"
)

// kubectl auth whoami reads who the server authenticated (SelfSubjectReview).
func TestKubectlAuthWhoami(t *testing.T) {
	e := newTestEnv(t)
	out, stderr, err := e.kubectl(30*time.Second, "auth", "whoami")
	if err != nil || !strings.Contains(out, adminUser.Name) || !strings.Contains(out, "system:masters") {
		t.Fatalf("kubectl auth whoami: %v\n%s\n%s", err, out, stderr)
	}
}
