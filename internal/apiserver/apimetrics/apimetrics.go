// Package apimetrics owns `ballast server`'s own metrics, under the names
// kube-apiserver uses so that its dashboards and alerts work unchanged:
// requests by verb, group, version, resource, subresource, scope and code
// (apiserver_request_total, apiserver_request_duration_seconds), open
// watches (apiserver_longrunning_requests), and the latency of each storage
// (etcd) operation (etcd_request_duration_seconds), plus Go and process
// figures. It is served on /metrics (admins only) with prometheus/client_golang.
package apimetrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ballast-dev/ballast/internal/storage"
)

// Metrics are an API server's metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watches  *prometheus.GaugeVec
	storage  *prometheus.HistogramVec
}

// New makes and registers the metrics.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	labels := []string{"verb", "group", "version", "resource", "subresource", "scope"}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_request_total",
		Help: "Counter of apiserver requests broken out for each verb, group, version, resource, subresource, scope and HTTP response code.",
	}, append(labels, "code"))
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_request_duration_seconds",
		Help:    "Response latency distribution in seconds for each verb, group, version, resource, subresource and scope (watches excluded).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, labels)
	m.watches = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_longrunning_requests",
		Help: "Gauge of all active long-running apiserver requests (watches) broken out by verb, group, version, resource and scope.",
	}, []string{"verb", "group", "version", "resource", "scope"})
	m.storage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "etcd_request_duration_seconds",
		Help:    "Etcd request latency in seconds for each operation and result.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"operation", "result"})
	m.reg.MustRegister(m.requests, m.latency, m.watches, m.storage,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Request says what one request was, for ObserveRequest.
type Request struct {
	Verb, Group, Version, Resource, Subresource string
	// Namespace is set for namespaced requests; Name for single objects.
	Namespace, Name string
}

func (r Request) scope() string {
	switch {
	case r.Resource == "":
		return ""
	case r.Name != "":
		return "resource"
	case r.Namespace != "":
		return "namespace"
	}
	return "cluster"
}

// ObserveRequest counts a finished request and, unless it is a watch,
// records its latency. Verbs are upper case, as kube-apiserver's (LIST, GET, WATCH, ...).
func (m *Metrics) ObserveRequest(r Request, code int, d time.Duration) {
	l := []string{r.Verb, r.Group, r.Version, r.Resource, r.Subresource, r.scope()}
	m.requests.WithLabelValues(append(l, strconv.Itoa(code))...).Inc()
	if r.Verb != "WATCH" {
		m.latency.WithLabelValues(l...).Observe(d.Seconds())
	}
}

// WatchStarted counts an open watch until the returned func is called.
func (m *Metrics) WatchStarted(r Request) (done func()) {
	g := m.watches.WithLabelValues("WATCH", r.Group, r.Version, r.Resource, r.scope())
	g.Inc()
	return g.Dec
}

// Store wraps s so that every operation's latency is recorded.
func (m *Metrics) Store(s storage.Store) storage.Store { return &store{Store: s, m: m} }

type store struct {
	storage.Store
	m *Metrics
}

func (s *store) observe(op string, start time.Time, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	s.m.storage.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

func (s *store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	start := time.Now()
	rev, err := s.Store.Create(ctx, key, value, ttl)
	s.observe("create", start, err)
	return rev, err
}

func (s *store) Get(ctx context.Context, key string) (storage.Object, error) {
	start := time.Now()
	o, err := s.Store.Get(ctx, key)
	s.observe("get", start, ignoreNotFound(err))
	return o, err
}

func (s *store) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	start := time.Now()
	r, err := s.Store.List(ctx, prefix, opts)
	s.observe("list", start, err)
	return r, err
}

func (s *store) Update(ctx context.Context, key string, expect int64, update storage.UpdateFunc) (storage.Object, error) {
	start := time.Now()
	o, err := s.Store.Update(ctx, key, expect, update)
	s.observe("update", start, err)
	return o, err
}

func (s *store) Delete(ctx context.Context, key string, expect int64) (storage.Object, error) {
	start := time.Now()
	o, err := s.Store.Delete(ctx, key, expect)
	s.observe("delete", start, ignoreNotFound(err))
	return o, err
}

func (s *store) Watch(ctx context.Context, prefix string, from int64, progress bool) (storage.Watch, error) {
	start := time.Now()
	w, err := s.Store.Watch(ctx, prefix, from, progress)
	s.observe("watch", start, err)
	return w, err
}

func (s *store) Revision(ctx context.Context) (int64, error) {
	start := time.Now()
	rev, err := s.Store.Revision(ctx)
	s.observe("revision", start, err)
	return rev, err
}

// RequestProgress passes the request on when the wrapped store takes one.
func (s *store) RequestProgress(ctx context.Context) error {
	return storage.RequestProgress(ctx, s.Store)
}

var _ storage.ProgressRequester = (*store)(nil)

// ignoreNotFound: a missing key is an answer, not a storage error.
func ignoreNotFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}
