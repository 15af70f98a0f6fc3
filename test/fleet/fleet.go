// Package fleet simulates a fleet of nodes against any Kubernetes API
// server: each simulated node is the project's own internal/mirror sync
// (the code every `ballast node` runs: it registers the Node, renews its
// Lease, keeps one mirror pod per static pod with its status), fed by a
// fake of the agent's published view (mirror.Source) whose static pods
// change status at a set rate. Nothing of the protocol is re-implemented.
//
// Each node talks to the server with node credentials of its own: a
// client certificate for system:node:NAME (group system:nodes) minted from
// the server's client CA when Config.NodeCACert and NodeCAKey are given
// (Ballast: <data-dir>/pki/ca.crt and ca.key; kube-apiserver: its
// --client-ca-file's pair), else the kubeconfig's own identity.
//
// Every request's latency is recorded by kind (Lease renewals, mirror
// status updates) at the HTTP transport, and each status change carries
// the time it was made (in its Ready condition's message, see ChangeTime)
// so that watchers can measure how late they see it.
package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/internal/mirror"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Config describes a fleet.
type Config struct {
	// Kubeconfig names the server (and, without a node CA, the identity
	// every node uses).
	Kubeconfig string
	// Nodes and PodsPerNode size the fleet.
	Nodes, PodsPerNode int
	// Prefix starts every node name ("sim" → sim-0000, sim-0001, ...).
	Prefix string
	// StatusChangesPerSecond is how many static pods, picked at random
	// across the fleet, change status each second.
	StatusChangesPerSecond float64
	// LeaseDuration is each node's Lease duration; renewed every quarter
	// of it (40 s: every 10 s, as the kubelet).
	LeaseDuration time.Duration
	// StartRate is how many nodes start per second (0: all at once).
	StartRate float64
	// NodeCACert and NodeCAKey mint each node's client certificate.
	NodeCACert, NodeCAKey string
	// Servers, if set, spread the nodes over these kubeconfigs (one per
	// API server behind the same storage), round robin; Kubeconfig is then
	// not used for the server.
	Servers []string
	Log     *slog.Logger
}

// Fleet is a running fleet.
type Fleet struct {
	cfg   Config
	nodes []*node
	Lat   *Latencies
	stop  context.CancelFunc
	wg    sync.WaitGroup
	errMu sync.Mutex
	errs  []error
}

// node is one simulated node: the agent's view (source) and its clients.
type node struct {
	name   string
	source *source
	client kubernetes.Interface
}

// Start starts the fleet; Stop ends it. Nodes start at cfg.StartRate.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Nodes <= 0 || cfg.PodsPerNode < 0 {
		return nil, fmt.Errorf("fleet: %d nodes with %d pods each: want at least one node", cfg.Nodes, cfg.PodsPerNode)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sim"
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 40 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	servers := cfg.Servers
	if len(servers) == 0 {
		servers = []string{cfg.Kubeconfig}
	}
	var bases []*rest.Config
	for _, kc := range servers {
		rc, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return nil, fmt.Errorf("fleet: kubeconfig %s: %w", kc, err)
		}
		bases = append(bases, rc)
	}
	var ca *x509.Certificate
	var caKey any
	if cfg.NodeCACert != "" || cfg.NodeCAKey != "" {
		var err error
		if ca, caKey, err = loadCA(cfg.NodeCACert, cfg.NodeCAKey); err != nil {
			return nil, err
		}
	}
	f := &Fleet{cfg: cfg, Lat: newLatencies()}
	for i := range cfg.Nodes {
		name := fmt.Sprintf("%s-%04d", cfg.Prefix, i)
		rc := rest.CopyConfig(bases[i%len(bases)])
		rc.QPS, rc.Burst = -1, 0 // a node's requests are few; never throttle them here
		rc.Timeout = 0
		if ca != nil {
			certPEM, keyPEM, err := nodeCert(ca, caKey, name)
			if err != nil {
				return nil, err
			}
			rc.CertData, rc.KeyData, rc.CertFile, rc.KeyFile = certPEM, keyPEM, "", ""
			rc.BearerToken, rc.BearerTokenFile, rc.Username, rc.Password, rc.ExecProvider, rc.AuthProvider = "", "", "", "", nil, nil
		}
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &timing{rt: rt, lat: f.Lat} }
		ownConnection(rc)
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("fleet: client for %s: %w", name, err)
		}
		f.nodes = append(f.nodes, &node{name: name, source: newSource(name, cfg.PodsPerNode), client: cs})
	}
	rctx, cancel := context.WithCancel(ctx)
	f.stop = cancel
	f.wg.Go(func() {
		var tick <-chan time.Time
		if cfg.StartRate > 0 {
			t := time.NewTicker(time.Duration(float64(time.Second) / cfg.StartRate))
			defer t.Stop()
			tick = t.C
		}
		for _, n := range f.nodes {
			if tick != nil {
				select {
				case <-rctx.Done():
					return
				case <-tick:
				}
			}
			f.wg.Go(func() {
				err := mirror.Run(rctx, mirror.Options{Client: n.client, NodeName: n.name, HostIP: "192.0.2.1",
					RuntimeVersion: "fleet://0", Source: n.source, LeaseDuration: cfg.LeaseDuration,
					Log: cfg.Log.With("node", n.name)})
				if err != nil && rctx.Err() == nil {
					f.errMu.Lock()
					f.errs = append(f.errs, fmt.Errorf("node %s: %w", n.name, err))
					f.errMu.Unlock()
				}
			})
		}
	})
	if cfg.StatusChangesPerSecond > 0 && cfg.PodsPerNode > 0 {
		f.wg.Go(func() { f.churn(rctx) })
	}
	return f, nil
}

// churn changes the status of random static pods at the configured rate.
func (f *Fleet) churn(ctx context.Context) {
	period := time.Duration(float64(time.Second) / f.cfg.StatusChangesPerSecond)
	const tick = 10 * time.Millisecond
	perTick := 1
	if period < tick {
		perTick = int(tick / period)
		period = tick
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range perTick {
			n := f.nodes[mrand.IntN(len(f.nodes))]
			n.source.change(mrand.IntN(f.cfg.PodsPerNode))
		}
	}
}

// Stop ends every node and waits for them; it returns the nodes' errors.
func (f *Fleet) Stop() error {
	f.stop()
	f.wg.Wait()
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return errors.Join(f.errs...)
}

// Names are the nodes' names.
func (f *Fleet) Names() []string {
	out := make([]string, len(f.nodes))
	for i, n := range f.nodes {
		out[i] = n.name
	}
	return out
}

// WaitMirrors waits until the server lists every node's mirror pods
// (through client, an admin's), or ctx ends.
func (f *Fleet) WaitMirrors(ctx context.Context, client kubernetes.Interface) error {
	want := f.cfg.Nodes * f.cfg.PodsPerNode
	for {
		l, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		have := 0
		if err == nil {
			for _, p := range l.Items {
				if strings.HasPrefix(p.Spec.NodeName, f.cfg.Prefix+"-") && p.DeletionTimestamp == nil {
					have++
				}
			}
			if have >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleet: %d of %d mirror pods after waiting (last error: %v)", have, want, err)
		case <-time.After(time.Second):
		}
	}
}

// changePrefix starts the Ready condition's message of a changed pod.
const changePrefix = "fleet change at "

// ChangeTime is when the fleet changed the status of p (the zero time for
// a pod it did not change).
func ChangeTime(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if ns, ok := strings.CutPrefix(c.Message, changePrefix); ok {
				if n, err := strconv.ParseInt(ns, 10, 64); err == nil {
					return time.Unix(0, n)
				}
			}
		}
	}
	return time.Time{}
}

// source is a node agent's published view: its static pods and their status.
type source struct {
	mu      sync.Mutex
	pods    []corev1.Pod
	changed chan struct{}
	evCh    chan struct{}
}

var _ mirror.Source = (*source)(nil)

func newSource(nodeName string, n int) *source {
	s := &source{changed: make(chan struct{}), evCh: make(chan struct{})}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	for j := range n {
		name := fmt.Sprintf("p%02d-%s", j, nodeName)
		s.pods = append(s.pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault, UID: types.UID("static-" + name),
				Labels:      map[string]string{"app": fmt.Sprintf("p%02d", j), "fleet": "sim"},
				Annotations: map[string]string{wellknown.AnnotationConfigHash: "fleet-v1", "kubernetes.io/config.source": "file"}},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "app", Image: "fleet.invalid/app:v1",
				ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePath: corev1.TerminationMessagePathDefault,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile}},
				RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, SchedulerName: corev1.DefaultSchedulerName,
				TerminationGracePeriodSeconds: ptrTo(int64(30)), SecurityContext: &corev1.PodSecurityContext{}, EnableServiceLinks: ptrTo(true)},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "192.0.2.1", PodIP: "10.0.0.1", StartTime: &now, QOSClass: corev1.PodQOSBestEffort,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "fleet.invalid/app:v1", ContainerID: "fleet://" + name,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}},
		})
	}
	return s
}

func ptrTo[T any](v T) *T { return &v }

func (s *source) Pods() []corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]corev1.Pod, len(s.pods))
	for i := range s.pods {
		out[i] = *s.pods[i].DeepCopy()
	}
	return out
}

func (s *source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *source) Events() []corev1.Event         { return nil }
func (s *source) EventsChanged() <-chan struct{} { return s.evCh }

// change gives pod i a new status: a restart, stamped with the time.
func (s *source) change(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.pods[i]
	p.Status.ContainerStatuses[0].RestartCount++
	p.Status.Conditions[0].Message = changePrefix + strconv.FormatInt(time.Now().UnixNano(), 10)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Latencies records request latencies by kind.
type Latencies struct {
	mu sync.Mutex
	by map[string][]time.Duration
}

func newLatencies() *Latencies { return &Latencies{by: map[string][]time.Duration{}} }

// Record adds one observation of kind.
func (l *Latencies) Record(kind string, d time.Duration) {
	l.mu.Lock()
	l.by[kind] = append(l.by[kind], d)
	l.mu.Unlock()
}

// Reset forgets every observation.
func (l *Latencies) Reset() {
	l.mu.Lock()
	l.by = map[string][]time.Duration{}
	l.mu.Unlock()
}

// Summary is the count and percentiles of one kind.
type Summary struct {
	N             int
	P50, P99, Max time.Duration
	Errors        int
}

// Summary returns kind's count and percentiles.
func (l *Latencies) Summary(kind string) Summary {
	l.mu.Lock()
	ds := append([]time.Duration(nil), l.by[kind]...)
	errs := len(l.by[kind+" error"])
	l.mu.Unlock()
	return Summarize(ds, errs)
}

// Summarize sorts ds and returns their percentiles.
func Summarize(ds []time.Duration, errs int) Summary {
	if len(ds) == 0 {
		return Summary{Errors: errs}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Summary{N: len(ds), P50: at(0.5), P99: at(0.99), Max: ds[len(ds)-1], Errors: errs}
}

func (s Summary) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v errors=%d", s.N, s.P50.Round(time.Microsecond*100), s.P99.Round(time.Microsecond*100), s.Max.Round(time.Millisecond), s.Errors)
}

// Kinds of request the transport tells apart.
const (
	LeaseRenewal = "lease renewal"
	StatusUpdate = "mirror status update"
)

// timing records each Lease renewal and mirror status update.
type timing struct {
	rt  http.RoundTripper
	lat *Latencies
}

func (t *timing) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := ""
	switch {
	case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/leases/"):
		kind = LeaseRenewal
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/status") && strings.Contains(r.URL.Path, "/pods/"):
		kind = StatusUpdate
	}
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	if kind != "" {
		if err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			t.lat.Record(kind+" error", time.Since(start))
		} else {
			t.lat.Record(kind, time.Since(start))
		}
	}
	return resp, err
}

// ownConnection gives rc's clients a transport (and so connections) of
// their own, as separate processes have: client-go shares one between
// configs that differ only in what it does not compare, unless they dial
// by themselves.
func ownConnection(rc *rest.Config) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	rc.Dial = d.DialContext
}

// loadCA reads a CA certificate and its private key (PEM).
func loadCA(certFile, keyFile string) (*x509.Certificate, any, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: the node CA (%s, %s): %w", certFile, keyFile, err)
	}
	return pair.Leaf, pair.PrivateKey, nil
}

// nodeCert mints a client certificate for system:node:name in system:nodes.
func nodeCert(ca *x509.Certificate, caKey any, name string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{SerialNumber: serial,
		Subject:   pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: signing node %s's certificate: %w", name, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
