package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

const (
	scrapePods   = 50
	scrapeRounds = 20
	// targetScrape is the goal for one /metrics plus one /stats/summary of
	// the node with scrapePods pods (issue 9).
	targetScrape = 20 * time.Millisecond
)

// BenchmarkNodeScrape times what a Prometheus scrape and a metrics-server
// (or `ballast server`'s metrics API) read cost the node with 50 pods: GET
// /metrics then GET /stats/summary, over the node's local socket (the
// kubelet HTTPS API serves the same handler behind TLS). Both are computed
// at request time, from the agent's state and the containers' cgroups (the
// runtime's CRI stats for any whose cgroup cannot be read); the median of
// 20 scrapes is reported, after one not counted (it finds each container's
// cgroup).
func BenchmarkNodeScrape(b *testing.B) {
	harness.Require(b)
	bin := buildBallast(b)
	env := harness.Start(b)
	manifests := filepath.Join(env.Dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		b.Fatal(err)
	}
	a := startNodeAgent(b, bin, env, manifests, "ballast-scrape")
	for i := range scrapePods {
		name := fmt.Sprintf("scrape-p%02d", i)
		if err := os.WriteFile(filepath.Join(manifests, name+".yaml"), []byte(manifestYAML(name, env.HelloImage())), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	c := localapi.NewClient(localapi.SocketPath(a.dataDir))
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		list, err := c.Pods(ctx)
		cancel()
		running := 0
		if err == nil {
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
		}
		if running == scrapePods {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pods running after 5 minutes (%v)\n%s", running, scrapePods, err, a.text())
		}
		time.Sleep(200 * time.Millisecond)
	}
	hc := localapi.HTTPClient(localapi.SocketPath(a.dataDir))
	get := func(path string) int {
		resp, err := hc.Get("http://ballast" + path)
		if err != nil {
			b.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", path, resp.Status)
		}
		return int(n)
	}
	var metricsD, summaryD []time.Duration
	scrape := func() (time.Duration, int) {
		t0 := time.Now()
		n := get("/metrics")
		t1 := time.Now()
		n += get("/stats/summary")
		t2 := time.Now()
		metricsD, summaryD = append(metricsD, t1.Sub(t0)), append(summaryD, t2.Sub(t1))
		return t2.Sub(t0), n
	}
	scrape() // not counted: first connection, first CRI stats call
	metricsD, summaryD = nil, nil
	statsBefore := runtimeCallTotals(b, hc, "ListContainerStats")
	var ds []time.Duration
	bytes := 0
	for range scrapeRounds {
		d, n := scrape()
		ds = append(ds, d)
		bytes = n
	}
	statsAfter := runtimeCallTotals(b, hc, "ListContainerStats")
	med := median(ds)
	fmt.Printf("\nnode scrape, %d pods: /metrics + /stats/summary median %.1f ms over %d scrapes (%d bytes); goal < %.0f ms: %s\n",
		scrapePods, ms(med), scrapeRounds, bytes, ms(targetScrape), verdict(med < targetScrape))
	calls := statsAfter.count - statsBefore.count
	fmt.Printf("  of which: /metrics median %.1f ms, /stats/summary median %.1f ms; the runtime's ListContainerStats was called %d times",
		ms(median(metricsD)), ms(median(summaryD)), int(calls))
	if calls > 0 {
		fmt.Printf(", %.1f ms on average (from the agent's own histogram)", (statsAfter.sum-statsBefore.sum)*1000/float64(calls))
	} else {
		fmt.Printf(" (every container read from its cgroup)")
	}
	fmt.Println()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(med), "scrape_50pods_ms")
}

// callTotals are a runtime call's count and total seconds in the agent's
// ballast_node_runtime_operations_duration_seconds histogram.
type callTotals struct {
	count, sum float64
}

// runtimeCallTotals reads the agent's /metrics for method's totals
// (the Prometheus text parser, as the e2e tests read /metrics).
func runtimeCallTotals(b *testing.B, hc *http.Client, method string) callTotals {
	resp, err := hc.Get("http://ballast/metrics")
	if err != nil {
		b.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatalf("/metrics does not parse: %v", err)
	}
	var t callTotals
	for _, m := range fams["ballast_node_runtime_operations_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" && l.GetValue() == method {
				t.count += float64(m.GetHistogram().GetSampleCount())
				t.sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return t
}
