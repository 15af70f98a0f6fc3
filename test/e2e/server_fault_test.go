package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// mirrorPod is a mirror pod of node (whose Node has uid) as a node creates it.
func mirrorPod(name, node, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + node, Namespace: "default",
			Annotations:     map[string]string{"kubernetes.io/config.mirror": "h-" + name, "kubernetes.io/config.source": "file"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: types.UID(uid), Controller: ptrTrue()}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "ballast.local/hello:v1"}}},
	}
}

func ptrTrue() *bool { b := true; return &b }

// ensureNode creates Node name (as admin) and returns its uid.
func ensureNode(t *testing.T, admin kubernetes.Interface, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Node %s: %v", name, err)
	}
	return string(n.UID)
}

func rvOf(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Errorf("resourceVersion %q is not a number: %v", s, err)
	}
	return n
}

type ack struct {
	kind, name string
	rv         int64
	at         time.Time
}

// kill -9 of the server during a stream of writes (leases as admin, mirror
// pods and their status as a node, through client-go with JSON); after a
// restart on the same data dir every acknowledged write is there, every
// object decodes, and resourceVersions keep increasing.
func TestServerKillDuringWrites(t *testing.T) {
	s := newSrv(t, filepath.Join(t.TempDir(), "data"))
	s.start()
	admin := s.admin()
	uid := ensureNode(t, admin, "n1")
	node := clientFor(t, s.tokenConfig(s.token("n1")))

	var mu sync.Mutex
	var acks []ack
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	record := func(a ack) { mu.Lock(); acks = append(acks, a); mu.Unlock() }
	pause := func() { // a failed write: back off a little
		failed.Add(1)
		select {
		case <-stop:
		case <-time.After(20 * time.Millisecond):
		}
	}
	acked := func(since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acks {
			if a.at.After(since) {
				n++
			}
		}
		return n
	}
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				name := fmt.Sprintf("w%d-%05d", w, i)
				l, err := admin.CoordinationV1().Leases("default").Create(ctx, &coordv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"writer": strconv.Itoa(w)}},
					Spec:       coordv1.LeaseSpec{HolderIdentity: &name},
				}, metav1.CreateOptions{})
				cancel()
				if err != nil {
					pause()
					continue
				}
				record(ack{"lease", name, rvOf(t, l.ResourceVersion), time.Now()})
			}
		})
	}
	wg.Go(func() { // a node: mirror pods, each created then its status written
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			p, err := node.CoreV1().Pods("default").Create(ctx, mirrorPod(fmt.Sprintf("m%05d", i), "n1", uid), metav1.CreateOptions{})
			if err != nil {
				cancel()
				pause()
				continue
			}
			record(ack{"pod", p.Name, rvOf(t, p.ResourceVersion), time.Now()})
			p.Status.Phase = corev1.PodRunning
			p.Status.Message = "status " + strconv.Itoa(i)
			p, err = node.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
			cancel()
			if err != nil {
				pause()
				continue
			}
			record(ack{"podstatus", p.Name, rvOf(t, p.ResourceVersion), time.Now()})
		}
	})

	// Writes go on until plenty are acknowledged, during the outage until
	// each writer has seen it fail, and after the restart until plenty more
	// are acknowledged.
	eventuallyDo(t, "writes acknowledged before the kill", time.Minute, func() error {
		if n := acked(time.Time{}); n < 50 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	})
	mu.Lock()
	before := len(acks)
	mu.Unlock()
	killedAt := time.Now()
	s.kill()
	failedAtKill := failed.Load()
	eventuallyDo(t, "writes failing while the server is down", time.Minute, func() error {
		if n := failed.Load() - failedAtKill; n < 8 {
			return fmt.Errorf("%d writes failed since the kill", n)
		}
		return nil
	})
	s.start()
	restartedAt := time.Now()
	eventuallyDo(t, "writes acknowledged after the restart", time.Minute, func() error {
		if n := acked(restartedAt); n < 20 {
			return fmt.Errorf("%d writes acknowledged after the restart", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged before kill -9, %d in all; %d failed (while down); down %s",
		before, len(acks), failed.Load(), restartedAt.Sub(killedAt).Round(time.Millisecond))
	if before < 20 {
		t.Fatalf("only %d writes acknowledged before the kill", before)
	}
	var after int
	var maxBefore, minAfter int64 = 0, -1
	for _, a := range acks {
		if a.at.Before(killedAt) {
			maxBefore = max(maxBefore, a.rv)
		} else if a.at.After(restartedAt) {
			after++
			if minAfter < 0 || a.rv < minAfter {
				minAfter = a.rv
			}
		}
	}
	if after == 0 {
		t.Fatalf("no write acknowledged after the restart")
	}
	if minAfter <= maxBefore {
		t.Errorf("resourceVersion went back: %d acknowledged after the restart, %d before the kill", minAfter, maxBefore)
	}
	// Each writer's acknowledged resourceVersions strictly increase.
	last := map[string]int64{}
	for _, a := range acks {
		key := a.kind
		if a.kind == "lease" {
			key = a.name[:2]
		}
		if key == "podstatus" {
			key = "pod"
		}
		if a.rv <= last[key] {
			t.Errorf("%s %s: resourceVersion %d after %d", a.kind, a.name, a.rv, last[key])
		}
		last[key] = a.rv
	}

	// Every acknowledged write is there, as acknowledged (or later).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leases, err := admin.CoordinationV1().Leases("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list leases after the restart: %v", err)
	}
	pods, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods after the restart: %v", err)
	}
	if rvOf(t, leases.ResourceVersion) < maxBefore || rvOf(t, pods.ResourceVersion) < maxBefore {
		t.Errorf("list resourceVersions %s, %s below %d acknowledged before the kill", leases.ResourceVersion, pods.ResourceVersion, maxBefore)
	}
	haveLease := map[string]coordv1.Lease{}
	for _, l := range leases.Items {
		haveLease[l.Name] = l
	}
	havePod := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		havePod[p.Name] = p
	}
	lost := 0
	for _, a := range acks {
		switch a.kind {
		case "lease":
			l, ok := haveLease[a.name]
			if !ok || rvOf(t, l.ResourceVersion) != a.rv || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != a.name {
				lost++
				t.Errorf("acknowledged lease %s (rv %d) missing or changed: %+v", a.name, a.rv, l.ObjectMeta)
			}
		case "pod", "podstatus":
			p, ok := havePod[a.name]
			if !ok || rvOf(t, p.ResourceVersion) < a.rv {
				lost++
				t.Errorf("acknowledged %s %s (rv %d) missing or older: %v rv %s", a.kind, a.name, a.rv, ok, p.ResourceVersion)
			}
			if a.kind == "podstatus" && p.Status.Phase != corev1.PodRunning {
				t.Errorf("acknowledged status of %s lost: %+v", a.name, p.Status)
			}
		}
		if lost > 10 {
			t.Fatal("too many lost writes")
		}
	}
	// Everything decodes: the lists above, and the rest, through client-go.
	if _, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list nodes: %v", err)
	}
	if _, err := admin.CoreV1().Events("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list events: %v", err)
	}
	if _, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list namespaces: %v", err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "n1" || len(p.Spec.Containers) != 1 || p.Annotations["kubernetes.io/config.mirror"] == "" {
			t.Errorf("pod %s corrupted: %+v", p.Name, p)
		}
	}
	// A paginated list sees the same set.
	seen, cont := 0, ""
	for {
		l, err := admin.CoordinationV1().Leases("default").List(ctx, metav1.ListOptions{Limit: 50, Continue: cont})
		if err != nil {
			t.Fatalf("paginated list: %v", err)
		}
		seen += len(l.Items)
		if cont = l.Continue; cont == "" {
			break
		}
	}
	if seen != len(leases.Items) {
		t.Errorf("paginated list: %d leases, full list %d", seen, len(leases.Items))
	}
	t.Logf("after the restart: %d leases, %d pods, all acknowledged writes present", len(leases.Items), len(pods.Items))
}
