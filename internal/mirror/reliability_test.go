package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ballast-dev/ballast/internal/localapi"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A write the API refuses for good is not tried again every round (issue
// 12, point 9: an admin kubeconfig made the agent retry mirror pod creates
// several times a second, forever): the tries of a mirror pod's create and
// of an event back off, doubling, however often the sync loop goes round.
func TestRefusedWritesBackOff(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	f := startTweaked(t, func(f *fixture, o *Options) {
		o.now = clock.Now
		refuse := func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
			return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "x", errors.New("refused"))
		}
		f.client.PrependReactor("create", "pods", refuse)
		f.client.PrependReactor("create", "events", refuse)
	}, staticPod("web", "h1", time.Now()))
	f.src.setEvents([]corev1.Event{{ObjectMeta: metav1.ObjectMeta{Name: "web-n1.1", Namespace: "default"}, Count: 1,
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-n1"}}})
	tries := func() (int, int) { return f.countOf("create", "pods"), f.countOf("create", "events") }
	for range 10 {
		f.nextRound()
	}
	f.settled()
	if p, e := tries(); p != 1 || e != 1 {
		t.Fatalf("10 rounds with a frozen clock: %d mirror pod creates and %d event creates, want 1 each", p, e)
	}
	clock.add(retryMin)
	f.settled()
	if p, e := tries(); p != 2 || e != 2 {
		t.Fatalf("after %v: %d and %d tries, want 2 each", retryMin, p, e)
	}
	clock.add(retryMin) // the next wait is twice as long
	f.settled()
	if p, e := tries(); p != 2 || e != 2 {
		t.Fatalf("after %v more: %d and %d tries, want still 2 (doubled back-off)", retryMin, p, e)
	}
	clock.add(retryMin)
	f.settled()
	if p, e := tries(); p != 3 || e != 3 {
		t.Fatalf("after the doubled wait: %d and %d tries, want 3 each", p, e)
	}
}

func TestRetries(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	r := newRetries(clock.Now)
	refused := apierrors.NewForbidden(corev1.Resource("pods"), "p", errors.New("no"))
	if !r.due("k") {
		t.Fatal("a first try waits")
	}
	var waits []time.Duration
	for range 12 {
		r.done("k", refused)
		waits = append(waits, r.next().Sub(clock.Now()))
		clock.add(r.next().Sub(clock.Now()))
	}
	want := "500ms 1s 2s 4s 8s 16s 32s 1m4s 2m0s 2m0s 2m0s 2m0s"
	if got := strings.Trim(fmt.Sprint(waits), "[]"); got != want {
		t.Errorf("waits %s, want %s", got, want)
	}
	r.done("k", apierrors.NewConflict(corev1.Resource("pods"), "p", errors.New("stale")))
	if !r.due("k") || !r.next().IsZero() {
		t.Errorf("a conflict backs off")
	}
	r.done("a", refused)
	r.done("b", refused)
	r.forget(func(k string) bool { return k == "a" })
	if r.due("a") || !r.due("b") {
		t.Errorf("forget dropped the wrong keys")
	}
}

// logBuf is a log sink safe for the sync's goroutine and the test.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// With credentials that are not the node's (the server's admin
// kubeconfig), the agent says so once, at start, with the command that
// makes node credentials.
func TestNotANodesCredentialsSaidOnce(t *testing.T) {
	for _, c := range []struct {
		user   authenticationv1.UserInfo
		wanted string
	}{
		{authenticationv1.UserInfo{Username: "ballast-admin", Groups: []string{"system:masters", "system:authenticated"}},
			`the API credentials are not a node's: they are user \"ballast-admin\", and a node agent acts as \"system:node:n1\"`},
		{authenticationv1.UserInfo{Username: "system:node:n2", Groups: []string{"system:nodes"}},
			`the API credentials are node \"n2\"'s, not this node's (\"n1\")`},
		{authenticationv1.UserInfo{Username: "system:node:n1", Groups: []string{"system:nodes"}}, "API credentials are the node's"},
	} {
		logs := &logBuf{}
		f := startTweaked(t, func(f *fixture, o *Options) {
			o.Log = slog.New(slog.NewTextHandler(logs, nil))
			f.client.PrependReactor("create", "selfsubjectreviews", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
				r := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.SelfSubjectReview)
				r.Status.UserInfo = c.user
				return true, r, nil
			})
		}, staticPod("web", "h1", time.Now()))
		f.mirror("web-n1", nil)
		f.settled()
		out := logs.String()
		if strings.Count(out, c.wanted) != 1 {
			t.Errorf("user %s: the log says %d times %q:\n%s", c.user.Username, strings.Count(out, c.wanted), c.wanted, out)
		}
		if c.user.Username != "system:node:n1" && !strings.Contains(out, "ballast server token create --node n1") {
			t.Errorf("user %s: no command to make node credentials:\n%s", c.user.Username, out)
		}
	}
}

type fakeDisk struct {
	pressure atomic.Bool
}

func (d *fakeDisk) Pressure() (bool, string) {
	if d.pressure.Load() {
		return true, "the disk holding /var/lib/ballast is nearly full"
	}
	return false, ""
}

// The Node's DiskPressure condition follows the node's disk.
func TestDiskPressureCondition(t *testing.T) {
	disk := &fakeDisk{}
	f := startTweaked(t, func(_ *fixture, o *Options) { o.Disk = disk }, staticPod("web", "h1", time.Now()))
	f.mirror("web-n1", nil)
	cond := func(want corev1.ConditionStatus, msg string) {
		t.Helper()
		f.eventually("DiskPressure "+string(want), func() error {
			n, err := f.client.CoreV1().Nodes().Get(t.Context(), testNode, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeDiskPressure {
					if c.Status != want || !strings.Contains(c.Message, msg) {
						return fmt.Errorf("%s %q", c.Status, c.Message)
					}
					return nil
				}
			}
			return fmt.Errorf("no DiskPressure condition: %v", n.Status.Conditions)
		})
	}
	cond(corev1.ConditionFalse, "no disk pressure")
	disk.pressure.Store(true)
	f.nextRound()
	cond(corev1.ConditionTrue, "nearly full")
	disk.pressure.Store(false)
	f.nextRound()
	cond(corev1.ConditionFalse, "no disk pressure")
}

type problemSource struct {
	*fakeSource
	problems []localapi.ManifestProblem
}

func (p problemSource) ManifestProblems() []localapi.ManifestProblem { return p.problems }

// A manifest directory that cannot be read is its own Warning on the Node
// and its pods, not an invalid manifest.
func TestManifestDirectoryEvent(t *testing.T) {
	msg := "the manifest directory /etc/kubernetes/manifests cannot be read (no such directory); its pods keep running as they were until it is back"
	f := startTweaked(t, func(f *fixture, o *Options) {
		o.ManifestDir = "/etc/kubernetes/manifests"
		o.Source = problemSource{f.src, []localapi.ManifestProblem{
			{File: "/etc/kubernetes/manifests", Error: msg, Pods: []string{"web-n1"}},
			{File: "/etc/kubernetes/manifests/bad.yaml", Error: "bad.yaml:3: spec: unknown field"},
		}}
	}, staticPod("web", "h1", time.Now()))
	f.mirror("web-n1", nil)
	f.settled()
	var got []string
	for _, r := range f.rec.list() {
		got = append(got, r.ref.Kind+" "+r.reason+": "+r.text)
	}
	for _, want := range []string{"Node ManifestDirectoryUnavailable: " + msg, "Pod ManifestDirectoryUnavailable: " + msg,
		"Node InvalidManifest: manifest file /etc/kubernetes/manifests/bad.yaml cannot be used: bad.yaml:3: spec: unknown field"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("no event %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
}
