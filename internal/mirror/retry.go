package mirror

import (
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The back-off between tries of one write the API failed or refused: from
// retryMin doubling to retryMax (a refusal that will not change by itself,
// such as Forbidden, is tried again at most every retryMax).
const (
	retryMin = 500 * time.Millisecond
	retryMax = 2 * time.Minute
)

// retries spaces the tries of the mirror path's writes, per key ("create
// default/web-n1", "event web-n1.17f..."): a write that failed waits its
// turn, doubling, however often the sync loop runs; one that succeeds is
// forgotten. Not safe for concurrent use (the sync loop owns it).
type retries struct {
	now     func() time.Time
	pending map[string]retry
}

type retry struct {
	at    time.Time
	delay time.Duration
}

func newRetries(now func() time.Time) *retries {
	if now == nil {
		now = time.Now
	}
	return &retries{now: now, pending: map[string]retry{}}
}

// due tells whether key may be tried now.
func (r *retries) due(key string) bool {
	p, ok := r.pending[key]
	return !ok || !r.now().Before(p.at)
}

// done records the result of a try of key. A conflict or a not-found is a
// race with another writer, settled by the next sync with fresh objects:
// no back-off.
func (r *retries) done(key string, err error) {
	if err == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) {
		delete(r.pending, key)
		return
	}
	d := retryMin
	if p, ok := r.pending[key]; ok {
		d = min(2*p.delay, retryMax)
	}
	r.pending[key] = retry{at: r.now().Add(d), delay: d}
}

// reset forgets every back-off (the API is back after an outage).
func (r *retries) reset() { clear(r.pending) }

// next is when the earliest pending try is due (zero if none).
func (r *retries) next() time.Time {
	var first time.Time
	for _, p := range r.pending {
		if first.IsZero() || p.at.Before(first) {
			first = p.at
		}
	}
	return first
}

// forget drops the keys keep does not want (objects gone).
func (r *retries) forget(keep func(key string) bool) {
	for k := range r.pending {
		if !keep(k) {
			delete(r.pending, k)
		}
	}
}
