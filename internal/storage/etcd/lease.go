package etcd

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxLeaseReuse bounds how long one lease is handed out: objects with a
// one-hour TTL (events) share one lease per minute, as in kube-apiserver.
const maxLeaseReuse = 60 * time.Second

// leaseGranter is the part of clientv3.Lease the manager uses.
type leaseGranter interface {
	Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error)
}

// leaseManager hands out etcd leases for objects with a TTL. A lease is
// granted for ttl plus a reuse window and given to every object with the
// same TTL created within that window, so each such object lives between
// ttl and ttl plus the window (a twentieth of ttl, between 1 s and 1 min),
// and etcd keeps one lease per TTL per window rather than one per object.
type leaseManager struct {
	client leaseGranter
	now    func() time.Time

	mu sync.Mutex
	// leases, guarded by mu, is the lease being handed out for each TTL (in
	// whole seconds).
	leases map[int64]grantedLease
}

type grantedLease struct {
	id clientv3.LeaseID
	// reuseUntil is the last moment an object may take this lease and
	// still live at least its TTL.
	reuseUntil time.Time
}

func newLeaseManager(client leaseGranter, now func() time.Time) *leaseManager {
	return &leaseManager{client: client, now: now, leases: map[int64]grantedLease{}}
}

// reuseWindow is how long a lease for ttl seconds is handed out.
func reuseWindow(ttlSeconds int64) time.Duration {
	return min(max(time.Duration(ttlSeconds)*time.Second/20, time.Second), maxLeaseReuse)
}

// lease returns a lease under which an object lives at least ttl and at
// most ttl plus its reuse window.
func (m *leaseManager) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	secs := int64((ttl + time.Second - 1) / time.Second) // etcd counts whole seconds; round up
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if l, ok := m.leases[secs]; ok && !now.After(l.reuseUntil) {
		return l.id, nil
	}
	window := reuseWindow(secs)
	resp, err := m.client.Grant(ctx, secs+int64(window/time.Second))
	if err != nil {
		return 0, err
	}
	for k, l := range m.leases {
		if now.After(l.reuseUntil) {
			delete(m.leases, k)
		}
	}
	m.leases[secs] = grantedLease{id: resp.ID, reuseUntil: now.Add(window)}
	return resp.ID, nil
}

// forget stops handing out lease id for ttl, when etcd no longer has it
// (revoked by hand, or lost in a restore from backup).
func (m *leaseManager) forget(ttl time.Duration, id clientv3.LeaseID) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[secs]; ok && l.id == id {
		delete(m.leases, secs)
	}
}
