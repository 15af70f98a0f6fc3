package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/ballast-dev/ballast/internal/storage/etcd/etcdtest"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// startEtcd starts an n-member etcd cluster (Debian's etcd-server); without
// an etcd binary the test is skipped, or fails when CI is set.
func startEtcd(t *testing.T, n int) (*etcdtest.Cluster, []string) {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		testutil.Need(t, "no etcd binary on PATH: the external-etcd tests need it (apt-get install -y etcd-server)")
	}
	c := etcdtest.StartCluster(t, n)
	return c, []string{"--etcd-servers", strings.Join(c.Endpoints, ","),
		"--etcd-cafile", c.CAFile, "--etcd-certfile", c.CertFile, "--etcd-keyfile", c.KeyFile}
}

func newLease(name string) *coordv1.Lease {
	return &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: coordv1.LeaseSpec{HolderIdentity: &name}}
}

// Two `ballast server` processes on one 3-member etcd cluster serve the same
// data: a write through one is seen by a watch (client-go) and by kubectl
// get -w on the other; with the leader member killed, both still serve reads,
// writes and watches.
func TestServerExternalEtcd(t *testing.T) {
	c, flags := startEtcd(t, 3)
	a := newSrv(t, filepath.Join(t.TempDir(), "a"), flags...)
	b := newSrv(t, filepath.Join(t.TempDir(), "b"), flags...)
	a.start()
	b.start()
	ca, cb := a.admin(), b.admin()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// kubectl get -w on b, and a client-go watch on b.
	kw := exec.Command(kubectlPath(t), "--kubeconfig", b.Kubeconfig, "--cache-dir", t.TempDir(), "get", "leases", "-n", "default", "-w", "-o", "name")
	var kout lockedBuf
	kw.Stdout, kw.Stderr = &kout, &kout
	if err := kw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kw.Process.Kill(); _ = kw.Wait() })
	list, err := cb.CoordinationV1().Leases("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cb.CoordinationV1().Leases("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := make(chan string, 100)
	watchEnded := make(chan struct{})
	go func() {
		defer close(watchEnded)
		for ev := range w.ResultChan() {
			if l, ok := ev.Object.(*coordv1.Lease); ok && ev.Type == watch.Added {
				seen <- l.Name
			}
		}
	}()
	waitSeen := func(name string, what string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case n := <-seen:
				if n == name {
					return
				}
			case <-watchEnded:
				t.Fatalf("%s: the watch on server b ended before %s was seen", what, name)
			case <-timeout:
				t.Fatalf("%s: the watch on server b did not see %s within 30 s", what, name)
			}
		}
	}
	kubectlShows := func(lease, what string) {
		t.Helper()
		eventuallyDo(t, "kubectl get -w on b shows "+what, 20*time.Second, func() error {
			if !strings.Contains(kout.String(), "lease.coordination.k8s.io/"+lease) {
				return fmt.Errorf("kubectl get -w output: %q", kout.String())
			}
			return nil
		})
	}
	// kubectl watches once it has printed a lease that existed before:
	// what comes after reaches it through the watch.
	if _, err := cb.CoordinationV1().Leases("default").Create(ctx, newLease("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSeen("before", "write through b")
	kubectlShows("before", "the first lease")
	if _, err := ca.CoordinationV1().Leases("default").Create(ctx, newLease("via-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSeen("via-a", "write through a")
	kubectlShows("via-a", "the lease written through a")
	if _, err := cb.CoordinationV1().Leases("default").Create(ctx, newLease("via-b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.CoordinationV1().Leases("default").Get(ctx, "via-b", metav1.GetOptions{}); err != nil {
		t.Errorf("a does not see the write through b: %v", err)
	}

	// Kill the leader member.
	leader := c.Leader()
	c.Stop(leader)
	t.Logf("killed etcd member %s (the leader)", c.Members[leader].Name)
	for i, cs := range []kubernetes.Interface{ca, cb} {
		name := fmt.Sprintf("after-%d", i)
		eventuallyDo(t, "a write with one etcd member down", 30*time.Second, func() error {
			_, err := cs.CoordinationV1().Leases("default").Create(ctx, newLease(name), metav1.CreateOptions{})
			if err != nil && !strings.Contains(err.Error(), "already exists") {
				return err
			}
			return nil
		})
	}
	for _, cs := range []kubernetes.Interface{ca, cb} {
		l, err := cs.CoordinationV1().Leases("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list with one etcd member down: %v", err)
		}
		var names []string
		for _, x := range l.Items {
			names = append(names, x.Name)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "after-0,after-1,before,via-a,via-b" {
			t.Errorf("leases with one member down: %v", names)
		}
	}
	waitSeen("after-0", "with the leader member down, the watch on b")
	kubectlShows("after-0", "a lease written with one member down")
	for _, s := range []*srvProc{a, b} {
		if out, err := newKubectl(t, "--kubeconfig", s.Kubeconfig).run("get", "--raw", "/readyz"); err != nil || strings.TrimSpace(out) != "ok" {
			t.Errorf("readyz with one etcd member down: %v %s", err, out)
		}
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// relistCounter counts the requests with which an informer (re)builds its
// cache: a pods list, or a watch that streams the initial state.
type relistCounter struct {
	rt    http.RoundTripper
	count atomic.Int64
	// failed counts requests that got no answer (the server is down).
	failed atomic.Int64
}

func (r *relistCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if strings.HasSuffix(req.URL.Path, "/pods") && (q.Get("watch") == "" || q.Get("sendInitialEvents") == "true") {
		r.count.Add(1)
	}
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		r.failed.Add(1)
	}
	return resp, err
}

// A client-go informer on pods (JSON) keeps its cache while its server is
// killed, resumes its watch after the restart without relisting, and
// relists after a 410 when etcd was compacted past what it had seen.
// The server uses an external etcd so that the test writes (through a second
// server) and compacts while the first is down.
func TestServerInformerRestartAnd410(t *testing.T) {
	c, flags := startEtcd(t, 1)
	a := newSrv(t, filepath.Join(t.TempDir(), "a"), flags...)
	b := newSrv(t, filepath.Join(t.TempDir(), "b"), flags...)
	a.start()
	b.start()
	uid := ensureNode(t, a.admin(), "n1")
	nodeA := clientFor(t, a.tokenConfig(a.token("n1")))
	nodeB := clientFor(t, b.tokenConfig(b.token("n1")))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	cfg := a.restConfig(a.Kubeconfig)
	cfg.Timeout = 0 // watches
	counter := &relistCounter{}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter }
	cs := clientFor(t, cfg)
	f := informers.NewSharedInformerFactory(cs, 0)
	inf := f.Core().V1().Pods().Informer()
	var mu sync.Mutex
	var events []string
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { mu.Lock(); events = append(events, "add "+o.(*corev1.Pod).Name); mu.Unlock() },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				mu.Lock()
				events = append(events, "delete "+p.Name)
				mu.Unlock()
			}
		},
	})
	infCtx, infCancel := context.WithCancel(ctx)
	defer infCancel()
	f.Start(infCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	cached := func() string {
		var names []string
		for _, o := range inf.GetStore().List() {
			names = append(names, o.(*corev1.Pod).Name)
		}
		sort.Strings(names)
		return strings.Join(names, ",")
	}
	waitCache := func(want, what string) {
		t.Helper()
		eventuallyDo(t, what, 30*time.Second, func() error {
			if got := cached(); got != want {
				return fmt.Errorf("informer cache %q, want %q", got, want)
			}
			return nil
		})
	}
	create := func(cs kubernetes.Interface, name string) {
		t.Helper()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, mirrorPod(name, "n1", uid), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	create(nodeA, "p1")
	waitCache("p1-n1", "the informer sees p1")
	lists0 := counter.count.Load()

	// 1. kill -9, a write through b meanwhile, restart: the watch resumes.
	a.kill()
	create(nodeB, "p2")
	// The informer has tried its server since (and found it down).
	failed := counter.failed.Load()
	eventuallyDo(t, "the informer tries its server", 30*time.Second, func() error {
		if counter.failed.Load() == failed {
			return fmt.Errorf("no request to the killed server since the write")
		}
		return nil
	})
	if got := cached(); got != "p1-n1" {
		t.Errorf("informer cache while its server is down: %q, want p1-n1", got)
	}
	a.start()
	waitCache("p1-n1,p2-n1", "after a restart the informer sees the write made while its server was down")
	create(nodeA, "p3")
	waitCache("p1-n1,p2-n1,p3-n1", "after a restart the informer sees new events")
	if n := counter.count.Load() - lists0; n != 0 {
		t.Errorf("the informer relisted %d times across a plain restart; want its watch resumed", n)
	}

	// 2. kill -9, writes through b, etcd compacted to now, restart: the
	// informer's watch gets 410 Gone and it relists.
	a.kill()
	// Deleted as its node finishes a deletion (grace period 0): at once.
	if err := nodeB.CoreV1().Pods("default").Delete(ctx, "p1-n1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	create(nodeB, "p4")
	ec := c.Client()
	resp, err := ec.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatalf("compacting etcd: %v", err)
	}
	a.start()
	// A watch from before the compaction, on a server that started after
	// it (its watch cache cannot reach back), is refused with 410 Gone.
	// (Server b, whose cache holds those revisions, still serves it.)
	if w, err := a.admin().CoreV1().Pods("").Watch(ctx, metav1.ListOptions{ResourceVersion: "2"}); err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Errorf("watch from a compacted resourceVersion: %v, want 410 Gone", err)
		}
	} else {
		select {
		case ev := <-w.ResultChan():
			st, ok := ev.Object.(*metav1.Status)
			if ev.Type != watch.Error || !ok || st.Code != http.StatusGone {
				t.Errorf("watch from a compacted resourceVersion: first event %s %+v, want an Error with 410 Gone", ev.Type, ev.Object)
			} else {
				t.Logf("watch from a compacted resourceVersion: %s", st.Message)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("watch from a compacted resourceVersion: no event in 10 s, want 410 Gone")
		}
		w.Stop()
	}
	waitCache("p2-n1,p3-n1,p4-n1", "after a 410 the informer relists")
	if n := counter.count.Load() - lists0; n < 1 {
		t.Errorf("the informer did not relist after etcd was compacted past its resourceVersion")
	}
	create(nodeA, "p5")
	waitCache("p2-n1,p3-n1,p4-n1,p5-n1", "after the relist the informer sees new events")
	mu.Lock()
	t.Logf("informer events: %v; relists after the first list: %d", events, counter.count.Load()-lists0)
	mu.Unlock()
}
