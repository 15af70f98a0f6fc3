package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// BenchmarkFleetEventWatchers: the case of issue 13. With ~11,000 events
// stored, 200 and then 1,000 clients open GET /api/v1/events?watch=1 at
// once (no resourceVersion: every event as ADDED, then the changes), each
// on a connection of its own; then 100 events are written. Every watcher
// must receive every event; the server's RSS is sampled throughout.
// FLEET_EVENTS and FLEET_EVENT_WATCHERS (200,1000) set it.
func BenchmarkFleetEventWatchers(b *testing.B) {
	testutil.Need(b, benchNeeds())
	stored := envInt("FLEET_EVENTS", 11000)
	counts := envList("FLEET_EVENT_WATCHERS", "200,1000")
	bin := buildBallast(b)
	dir := b.TempDir()
	s := startProc(b, dir, "ballast-server", bin, "server", "--data-dir", filepath.Join(dir, "data"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(b)), "--log-level", "warn")
	s.kubeconfig = filepath.Join(dir, "data", "kubeconfig")
	s.waitReady(b, time.Minute)
	rc := s.rest(b)
	admin, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	create := func(from, n int) {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(int64(from))
		for range 16 {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= from+n {
						return
					}
					ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fleet.%06d", i)}, Reason: "Fleet", Message: "an event of the watcher benchmark",
						InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: fmt.Sprintf("p%d", i)}, Type: corev1.EventTypeNormal, Count: 1}
					if _, err := admin.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
						b.Errorf("creating event %d: %v", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	create(0, stored)
	total := stored
	var report []string
	for range b.N {
		for _, c := range counts {
			var n int
			if _, err := fmt.Sscan(c, &n); err != nil {
				b.Fatalf("FLEET_EVENT_WATCHERS: %q", c)
			}
			line := watchEvents(b, s, rc, n, total, func() { create(total, 100) })
			total += 100
			report = append(report, line)
			b.Log(line)
		}
	}
	fmt.Printf("\nevent watchers (%d events stored before):\n%s\n", stored, strings.Join(report, "\n"))
}

// watchEvents opens n watches of all events, waits until each has the
// stored ones, writes more (write), waits until each has those too, and
// reports times, failures and the server's memory.
func watchEvents(b *testing.B, s *server, rc *rest.Config, n, stored int, write func()) string {
	tlsCfg, err := rest.TLSConfigFor(rc)
	if err != nil {
		b.Fatal(err)
	}
	// HTTP/1.1: one connection per watch, as separate clients have.
	tr := &http.Transport{TLSClientConfig: tlsCfg, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var peak atomic.Int64
	before := s.usage()
	go func() {
		for ctx.Err() == nil {
			if r := s.usage().rss; r > peak.Load() {
				peak.Store(r)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	var failed atomic.Int64
	counts := make([]atomic.Int64, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", rc.Host+"/api/v1/events?watch=1", nil)
			if rc.BearerToken != "" {
				req.Header.Set("Authorization", "Bearer "+rc.BearerToken)
			}
			resp, err := hc.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if bytes.HasPrefix(sc.Bytes(), []byte(`{"type":"ADDED"`)) {
					counts[i].Add(1)
				}
			}
		})
	}
	wait := func(want int, timeout time.Duration) (time.Duration, int) {
		deadline := time.Now().Add(timeout)
		for {
			done := 0
			for i := range counts {
				if counts[i].Load() >= int64(want) {
					done++
				}
			}
			if done+int(failed.Load()) >= n || time.Now().After(deadline) {
				return time.Since(start), done
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	initial, haveInitial := wait(stored, 10*time.Minute)
	t1 := time.Now()
	write()
	start = t1
	more, haveAll := wait(stored+100, 5*time.Minute)
	after := s.usage()
	cancel()
	wg.Wait()
	return fmt.Sprintf("%d watchers: %d failed; %d had all %d stored events after %v; %d had the 100 new ones %v after they were written; "+
		"server RSS %.0f MB before, %.0f MB at most, CPU %.1f s",
		n, failed.Load(), haveInitial, stored, initial.Round(time.Millisecond), haveAll, more.Round(time.Millisecond),
		float64(before.rss)/(1<<20), float64(peak.Load())/(1<<20), (after.cpu - before.cpu).Seconds())
}
