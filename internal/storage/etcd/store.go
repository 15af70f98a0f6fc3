package etcd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-dev/ballast/internal/storage"
)

func (s *Store) etcdKey(key string) string { return s.prefix + key }

func (s *Store) object(kv *mvccpb.KeyValue) storage.Object {
	return storage.Object{
		Key:      strings.TrimPrefix(string(kv.Key), s.prefix),
		Value:    kv.Value,
		Revision: kv.ModRevision,
	}
}

// mapErr turns an etcd client error into one wrapping a storage sentinel
// where one applies; what is an error of ctx stays one.
func mapErr(ctx context.Context, op, key string, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("etcd %s %q: %w", op, key, err)
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("etcd %s %q: %w (list or watch again from the current revision)", op, key, storage.ErrCompacted)
	}
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return fmt.Errorf("etcd %s %q: %w: %w", op, key, storage.ErrUnavailable, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The client's own deadline (dial, keepalive) ran out.
		return fmt.Errorf("etcd %s %q: %w: %w", op, key, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("etcd %s %q: %w", op, key, err)
}

// Create stores value under key if nothing is there; with ttl > 0 the
// object is attached to a shared lease and expires after ttl (plus at most
// a twentieth of ttl, at most a minute).
func (s *Store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	k := s.etcdKey(key)
	for attempt := 0; ; attempt++ {
		var opts []clientv3.OpOption
		var lease clientv3.LeaseID
		if ttl > 0 {
			var err error
			if lease, err = s.leases.lease(ctx, ttl); err != nil {
				return 0, mapErr(ctx, "lease for", key, err)
			}
			opts = append(opts, clientv3.WithLease(lease))
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, string(value), opts...)).
			Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			s.leases.forget(ttl, lease)
			continue
		}
		if err != nil {
			return 0, mapErr(ctx, "create", key, err)
		}
		if !resp.Succeeded {
			return 0, fmt.Errorf("create %q: %w", key, storage.ErrAlreadyExists)
		}
		return resp.Header.Revision, nil
	}
}

// Get returns the object at key.
func (s *Store) Get(ctx context.Context, key string) (storage.Object, error) {
	return s.get(ctx, key)
}

func (s *Store) get(ctx context.Context, key string, opts ...clientv3.OpOption) (storage.Object, error) {
	resp, err := s.client.Get(ctx, s.etcdKey(key), opts...)
	if err != nil {
		return storage.Object{}, mapErr(ctx, "get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return storage.Object{}, fmt.Errorf("get %q: %w", key, storage.ErrNotFound)
	}
	return s.object(resp.Kvs[0]), nil
}

// continueToken is what a List's Continue carries, base64 JSON encoded:
// the revision the first page was read at and the key (relative to the
// listed prefix) the next page starts at.
type continueToken struct {
	Revision int64  `json:"rv"`
	Start    string `json:"start"`
}

func encodeContinue(t continueToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err == nil && (t.Revision <= 0 || t.Start == "") {
		err = errors.New("missing revision or start key")
	}
	if err != nil {
		return continueToken{}, fmt.Errorf("%w (start the list again without it): %v", storage.ErrInvalidContinue, err)
	}
	return t, nil
}

// List returns the objects under prefix in key order, one page at a time.
// Every page of a list is read at the revision of its first page.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	full := s.etcdKey(prefix)
	start, rev := full, opts.Revision
	if opts.Continue != "" {
		t, err := decodeContinue(opts.Continue)
		if err != nil {
			return storage.ListResult{}, fmt.Errorf("list %q: %w", prefix, err)
		}
		start, rev = full+t.Start, t.Revision
	}
	ops := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(full))}
	if rev > 0 {
		ops = append(ops, clientv3.WithRev(rev))
	}
	if opts.Limit > 0 {
		ops = append(ops, clientv3.WithLimit(opts.Limit))
	}
	resp, err := s.client.Get(ctx, start, ops...)
	if err != nil {
		if errors.Is(err, rpctypes.ErrFutureRev) {
			return storage.ListResult{}, fmt.Errorf("list %q at revision %d: the store is not at that revision yet", prefix, rev)
		}
		return storage.ListResult{}, mapErr(ctx, "list", prefix, err)
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	res := storage.ListResult{Revision: rev, Objects: make([]storage.Object, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		res.Objects = append(res.Objects, s.object(kv))
	}
	if resp.More && len(resp.Kvs) > 0 {
		last := string(resp.Kvs[len(resp.Kvs)-1].Key)
		res.Continue = encodeContinue(continueToken{Revision: rev, Start: strings.TrimPrefix(last, full) + "\x00"})
		res.Remaining = resp.Count - int64(len(resp.Kvs))
	}
	return res, nil
}

// Update replaces the object at key with update's result, retrying from
// the latest value when another writer got there first (unless
// expectRevision > 0: then any other revision is ErrConflict). When update
// returns the current value unchanged nothing is written and the current
// object is returned, as kube-apiserver does.
func (s *Store) Update(ctx context.Context, key string, expectRevision int64, update storage.UpdateFunc) (storage.Object, error) {
	k := s.etcdKey(key)
	// The first read is a guess: serializable, from whichever member
	// answers, without the round of the cluster a linearizable read costs
	// (as kube-apiserver starts from its watch cache's copy). The write is
	// conditioned on the revision read, so a stale guess only costs a
	// retry; what would be decided from the guess alone (a conflict, not
	// found, an error of update's, nothing to write) is read again
	// linearizably first.
	cur, err := s.firstRead(ctx, key)
	fresh := false
	again := func() { cur, err = s.get(ctx, key); fresh = true } // linearizably
	for {
		if err != nil && !fresh && errors.Is(err, storage.ErrNotFound) {
			again()
		}
		if err != nil {
			return storage.Object{}, fmt.Errorf("update: %w", err)
		}
		if expectRevision > 0 && cur.Revision != expectRevision {
			if !fresh && cur.Revision < expectRevision {
				again()
				continue
			}
			return storage.Object{}, fmt.Errorf("update %q at revision %d: it is at revision %d: %w", key, expectRevision, cur.Revision, storage.ErrConflict)
		}
		value, uerr := update(cur)
		if !fresh && (uerr != nil || bytes.Equal(value, cur.Value)) {
			again()
			continue
		}
		if uerr != nil {
			return storage.Object{}, uerr
		}
		if bytes.Equal(value, cur.Value) {
			return cur, nil
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k), "=", cur.Revision)).
			Then(clientv3.OpPut(k, string(value), clientv3.WithIgnoreLease())).
			Else(clientv3.OpGet(k)).
			Commit()
		if err != nil {
			return storage.Object{}, mapErr(ctx, "update", key, err)
		}
		if resp.Succeeded {
			return storage.Object{Key: key, Value: value, Revision: resp.Header.Revision}, nil
		}
		// The Else's read is linearizable: a transaction goes through the
		// cluster.
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return storage.Object{}, fmt.Errorf("update %q: %w", key, storage.ErrNotFound)
		}
		cur, fresh = s.object(kvs[0]), true
	}
}

// firstRead is an update's first read of its object: serializable, unless
// a test gave Store.guess.
func (s *Store) firstRead(ctx context.Context, key string) (storage.Object, error) {
	if s.guess != nil {
		return s.guess(ctx, key)
	}
	return s.get(ctx, key, clientv3.WithSerializable())
}

// Delete removes the object at key and returns its last value, with the
// revision of its last write.
func (s *Store) Delete(ctx context.Context, key string, expectRevision int64) (storage.Object, error) {
	k := s.etcdKey(key)
	if expectRevision <= 0 {
		resp, err := s.client.Delete(ctx, k, clientv3.WithPrevKV())
		if err != nil {
			return storage.Object{}, mapErr(ctx, "delete", key, err)
		}
		if len(resp.PrevKvs) == 0 {
			return storage.Object{}, fmt.Errorf("delete %q: %w", key, storage.ErrNotFound)
		}
		return s.object(resp.PrevKvs[0]), nil
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", expectRevision)).
		Then(clientv3.OpDelete(k, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return storage.Object{}, mapErr(ctx, "delete", key, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return storage.Object{}, fmt.Errorf("delete %q: %w", key, storage.ErrNotFound)
		}
		return storage.Object{}, fmt.Errorf("delete %q at revision %d: it is at revision %d: %w", key, expectRevision, kvs[0].ModRevision, storage.ErrConflict)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 { // deleted between the compare and the delete: cannot happen in one txn
		return storage.Object{}, fmt.Errorf("delete %q: %w", key, storage.ErrNotFound)
	}
	return s.object(prev[0]), nil
}

// Revision returns the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	// A count-only read of one key costs the server next to nothing and
	// carries the current revision in its header.
	resp, err := s.client.Get(ctx, compactRevKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr(ctx, "revision", "", err)
	}
	return resp.Header.Revision, nil
}

// Compact discards the history before revision: reads and watches at
// older revisions then fail with storage.ErrCompacted.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	if _, err := s.client.Compact(ctx, revision); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil // already compacted at least that far
		}
		return mapErr(ctx, "compact", fmt.Sprint(revision), err)
	}
	return nil
}
