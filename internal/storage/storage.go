// Package storage owns how the API server keeps objects: a small interface of
// the operations kube-apiserver needs from etcd (get, list, create with TTL,
// conditional update and delete, watch from a revision), implemented on etcd
// v3 through its Go client, embedded or external. Objects are opaque JSON
// bytes here; resourceVersion is the etcd revision of the object's last write.
package storage

import (
	"context"
	"errors"
	"time"
)

// Errors every implementation returns, wrapped with the key.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a precondition (resourceVersion) did not hold.
	ErrConflict = errors.New("conflict")
	// ErrCompacted: the requested revision is older than the oldest kept (HTTP 410 Gone).
	ErrCompacted = errors.New("revision compacted")
	// ErrUnavailable: the backing store cannot be reached.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrInvalidContinue: a List's continue token is not one List returned
	// (a client's mistake: HTTP 400).
	ErrInvalidContinue = errors.New("invalid continue token")
	// ErrInsufficientStorage: the write is refused because the disk
	// holding the data is nearly full (HTTP 507).
	ErrInsufficientStorage = errors.New("insufficient storage")
)

// Object is one stored value and the revision of its last write.
type Object struct {
	Key   string
	Value []byte
	// Revision is the revision at which the object was last written (its resourceVersion).
	Revision int64
}

// ListOptions bound a List.
type ListOptions struct {
	// Limit is the most objects to return; 0 for all.
	Limit int64
	// Continue is the token a previous List returned, to get the next page.
	Continue string
	// Revision reads at that revision (0: the latest). A compacted revision gives ErrCompacted.
	Revision int64
}

// ListResult is one page of a List.
type ListResult struct {
	Objects []Object
	// Revision is the store revision the list was read at (the list's resourceVersion).
	Revision int64
	// Continue is non-empty when more objects remain.
	Continue string
	// Remaining is how many objects remain after this page, when known.
	Remaining int64
}

// EventType says what happened to an object.
type EventType string

const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	// Progress carries no object: every object up to Revision has been sent
	// (used for watch bookmarks).
	Progress EventType = "PROGRESS"
)

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	// Object is the new value. For Deleted it is the last value, with
	// Revision set to the revision of the delete, as kube-apiserver sends it.
	Object Object
	// Revision is the revision of the change.
	Revision int64
}

// UpdateFunc computes a new value from the current one. Returning an error
// aborts the update with that error. It may be called more than once, each
// time with a newer current value.
type UpdateFunc func(current Object) (newValue []byte, err error)

// Store keeps objects under string keys such as "/pods/default/web-node1"
// (keys start with "/"). The suite in internal/storage/storagetest checks
// an implementation.
type Store interface {
	// Create stores value under key if no object is there. With ttl > 0 the
	// object expires after ttl (events; it may live up to a twentieth of
	// ttl, at most a minute, longer). It returns the new object's revision.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error)
	// Get returns the object at key, or ErrNotFound.
	Get(ctx context.Context, key string) (Object, error)
	// List returns the objects whose keys start with prefix, in key order.
	List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error)
	// Update replaces the object at key with update's result, retrying when
	// another writer got there first. With expectRevision > 0 the object must
	// be at that revision, else ErrConflict. It returns the new object.
	// When update returns the current value unchanged, nothing is written
	// and the current object is returned (its revision stays), as
	// kube-apiserver does. Errors from update are returned as they are.
	Update(ctx context.Context, key string, expectRevision int64, update UpdateFunc) (Object, error)
	// Delete removes the object at key (at expectRevision when > 0, else
	// ErrConflict) and returns its last value, with the revision of its
	// last write.
	Delete(ctx context.Context, key string, expectRevision int64) (Object, error)
	// Watch sends the changes under prefix after fromRevision (0: after the
	// current revision), in revision order, until ctx ends or the watch
	// fails; a compacted fromRevision gives ErrCompacted at once. With
	// progress, Progress events are sent periodically while nothing changes
	// under prefix (their Revision may pass changes made elsewhere). The channel is closed at the end;
	// Err then tells why (nil when ctx ended).
	Watch(ctx context.Context, prefix string, fromRevision int64, progress bool) (Watch, error)
	// Revision returns the store's current revision.
	Revision(ctx context.Context) (int64, error)
	Close() error
}

// ProgressRequester is implemented by a Store that can be asked to send a
// Progress event soon to each of its watches that asked for progress (a
// watch cache that a reader waits on asks, rather than waiting for the next
// periodic one). Asking when nothing waits is harmless.
type ProgressRequester interface {
	RequestProgress(ctx context.Context) error
}

// RequestProgress asks s for progress when it can be asked (see
// ProgressRequester), and does nothing otherwise: a Store that wraps
// another passes the request on with it, so that wrapping never hides it.
func RequestProgress(ctx context.Context, s Store) error {
	if pr, ok := s.(ProgressRequester); ok {
		return pr.RequestProgress(ctx)
	}
	return nil
}

// Watch is a running watch.
type Watch interface {
	Events() <-chan Event
	Err() error
}
