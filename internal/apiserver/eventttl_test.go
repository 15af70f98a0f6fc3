package apiserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

// Events expire after an hour through an etcd lease (as kube-apiserver's
// --event-ttl); other objects have no lease.
func TestEventsExpireThroughALease(t *testing.T) {
	e := newTestEnv(t)
	ev := corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-n1.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-n1"},
		Reason:         "Started", Message: "Started container web", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "kubelet", Host: "n1"},
	}
	if code, body := e.do(http.MethodPost, "/api/v1/namespaces/default/events", "node:n1", "", ev, nil); code != http.StatusCreated {
		t.Fatalf("creating an event: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := e.store.(*etcd.Store).Client()
	resp, err := cl.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var evLease, nsLease int64 = -1, -1
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case strings.HasSuffix(k, "/events/default/web-n1.1"):
			evLease = kv.Lease
		case strings.HasSuffix(k, "/namespaces/default"):
			nsLease = kv.Lease
		}
	}
	if evLease <= 0 {
		t.Fatalf("the event has no lease (lease %d)", evLease)
	}
	if nsLease != 0 {
		t.Errorf("a namespace has lease %d, want none", nsLease)
	}
	ttl, err := cl.TimeToLive(ctx, clientv3.LeaseID(evLease))
	if err != nil {
		t.Fatal(err)
	}
	// One lease per window of ttl/20: between 57 and 63 minutes left.
	if ttl.TTL < int64((57*time.Minute).Seconds()) || ttl.TTL > int64((63*time.Minute).Seconds()) {
		t.Errorf("event lease TTL %d s, want about an hour", ttl.TTL)
	}
}
