package localapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Whatever path and query a client of the socket sends (the kubelet's read
// paths and Ballast's): no panic, no 5xx (a bad option is a 400 that says
// so), and a log is read only where the agent says it is.
func FuzzLocalAPIRequests(f *testing.F) {
	dir := f.TempDir()
	logPath := filepath.Join(dir, "0.log")
	var b strings.Builder
	for i := range 50 {
		b.WriteString("2026-01-02T03:04:05.000000006Z stdout F line " + strings.Repeat("x", i) + "\n")
	}
	b.WriteString("2026-01-02T03:04:06Z stderr P part")
	if err := os.WriteFile(logPath, []byte(b.String()), 0o644); err != nil {
		f.Fatal(err)
	}
	p := &fakeProvider{
		pods: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}},
		files: map[string]string{"default/web-n1/app": logPath, "default/web-n1/app/previous": logPath},
		asked: make(chan struct{}, 1),
	}
	h := Handler(p, slog.New(slog.DiscardHandler))
	for _, s := range []string{
		"/healthz", "/pods", "/pods/", "/events", "/manifests/problems",
		"/containerLogs/default/web-n1/app", "/containerLogs/default/web-n1/app?tailLines=3&timestamps=true",
		"/containerLogs/default/web-n1/app?limitBytes=10&sinceSeconds=5", "/containerLogs/default/web-n1/app?previous=true&tailLines=-1",
		"/containerLogs/default/web-n1/app?sinceTime=2026-01-02T03:04:05Z&follow=true", "/containerLogs/default/web-n1/app?tailLines=x",
		"/containerLogs/default/web-n1/..%2F..%2Fetc%2Fpasswd", "/containerLogs/default/web-n1", "/containerLogs//web-n1/app",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.Parse(target)
		if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ballast"+u.RequestURI(), nil)
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("GET %s: %d: %s", target, w.Code, w.Body.String())
		}
	})
}
