package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// Registry credentials from the node's docker config file, and the pull timeout.
func TestPodSpecImagePulls(t *testing.T) {
	env := harness.Start(t)
	// A registry that wants basic auth for pulls (pushes are let through
	// until the image is in).
	var locked atomic.Bool
	reg := registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if locked.Load() {
			u, p, ok := r.BasicAuth()
			if !ok || u != "puller" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="ballast-test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	defer authSrv.Close()
	authHost := strings.TrimPrefix(authSrv.URL, "http://")
	private := env.PushHelloTo(t, authHost, "private/hello:v1")
	locked.Store(true)
	// A registry that never answers.
	hang := make(chan struct{})
	hangSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hangSrv.Close()
	defer close(hang)
	hangHost := strings.TrimPrefix(hangSrv.URL, "http://")

	// The back-off is longer than the timeout, so that the failure shows
	// between tries (while a pull runs the container is ContainerCreating).
	n := newNode(t, env, "--image-pull-timeout", "3s", "--image-pull-backoff-initial", "8s", "--image-pull-backoff-max", "8s")
	n.start()
	n.write("private.yaml", manifest{Name: "private", Image: private}.yaml())
	n.waitPod("private", "pull refused", waitingWith("ErrImagePull|ImagePullBackOff", "401"))

	// Credentials in <data-dir>/config.json: the next try pulls.
	cfg := fmt.Sprintf(`{"auths": {"http://%s/v1/": {"auth": %q}}}`, authHost, base64.StdEncoding.EncodeToString([]byte("puller:s3cret")))
	if err := os.WriteFile(filepath.Join(n.dataDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.waitPod("private", "running", running)

	n.write("slow.yaml", manifest{Name: "slow", Image: hangHost + "/slow/hello:v1"}.yaml())
	n.waitPod("slow", "pull timed out", waitingWith("ErrImagePull|ImagePullBackOff", "pull timed out after 3s (--image-pull-timeout)"))
}
