package harness

import (
	"strings"
	"testing"
)

// PushHelloTo pushes the hello image to another plain-HTTP registry at host
// (127.0.0.1:PORT) as host/repoTag and returns the reference.
func (e *Env) PushHelloTo(t testing.TB, host, repoTag string) string {
	t.Helper()
	hello, _, err := builtBinaries()
	if err != nil {
		t.Fatal(err)
	}
	img, err := programImage("hello", hello, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	repo, tag, ok := strings.Cut(repoTag, ":")
	if !ok {
		tag = "latest"
	}
	if err := pushImage(host, repo, tag, img); err != nil {
		t.Fatalf("e2e: pushing %s/%s: %v", host, repoTag, err)
	}
	return host + "/" + repo + ":" + tag
}
