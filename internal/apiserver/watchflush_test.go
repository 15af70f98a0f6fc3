package apiserver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/rest"
)

// flushCounter counts the flushes of the responses it wraps.
type flushCounter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (f flushCounter) Flush() {
	f.n.Add(1)
	http.NewResponseController(f.ResponseWriter).Flush()
}

func (f flushCounter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// A burst of events reaches a watcher whole and in order, and a stream that
// keeps receiving flushes at most once per rest.FlushInterval (after the
// first rest.FlushBurst).
func TestWatchCoalescesFlushesOfBursts(t *testing.T) {
	e := newTestEnv(t)
	var flushes atomic.Int64
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.srv.Handler().ServeHTTP(flushCounter{w, &flushes}, r)
	}))
	t.Cleanup(counted.Close)
	direct := e.ts
	e.ts = counted
	// From the current revision: no initial events, whose flushes are not
	// spaced.
	var l metav1.List
	code, body := e.do("GET", "/api/v1/namespaces/default/events", "admin", "", nil, &l)
	e.must(code, body, 200)
	next := e.watch("/api/v1/namespaces/default/events?watch=true&resourceVersion=" + l.ResourceVersion)
	e.ts = direct
	before, start := flushes.Load(), time.Now()

	const events, writers = 200, 8
	var wg sync.WaitGroup
	errs := make(chan error, events)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < events; i += writers {
				body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Event","metadata":{"name":"burst-%03d"},"involvedObject":{"kind":"Pod","namespace":"default","name":"p"},"reason":"Burst","message":"%d","type":"Normal"}`, i, i)
				req, _ := http.NewRequest("POST", direct.URL+"/api/v1/namespaces/default/events", bytes.NewReader([]byte(body)))
				req.Header.Set("Authorization", "Bearer admin")
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("creating burst-%03d: status %d", i, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := int64(0)
	for range events {
		ev := next()
		m := objMeta(t, ev.Object)
		rv, _ := strconv.ParseInt(m.ResourceVersion, 10, 64)
		if ev.Type != "ADDED" || rv <= last || seen[m.Name] {
			t.Fatalf("event %s %s at %d after %d (seen before: %t): want each Event ADDED once, in revision order", ev.Type, m.Name, rv, last, seen[m.Name])
		}
		seen[m.Name], last = true, rv
	}
	took := time.Since(start)
	// A burst at once, then at most one flush per interval.
	if n, most := flushes.Load()-before, int64(took/rest.FlushInterval)+rest.FlushBurst; n > most {
		t.Errorf("%d events in %v took %d flushes, want at most %d (one per %v while events keep coming)", events, took, n, most, rest.FlushInterval)
	} else {
		t.Logf("%d events in %v: %d flushes", events, took, n)
	}
}
