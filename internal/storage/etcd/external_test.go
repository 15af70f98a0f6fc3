//go:build integration

// These tests run an external etcd cluster (the etcd binary, from Debian's
// etcd-server): hack/test.sh runs them with -tags integration.

package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/storage"
	"github.com/ballast-dev/ballast/internal/storage/etcd/etcdtest"
	"github.com/ballast-dev/ballast/internal/testutil"
)

// retry calls fn until it succeeds or the time is up.
func retry(t *testing.T, within time.Duration, what string, fn func(ctx context.Context) error) {
	t.Helper()
	err := testutil.Poll(within, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return fn(ctx)
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// A Store on an external 3-member cluster, over TLS with a client
// certificate, keeps serving when the leader dies.
func TestExternalClusterMemberDown(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	s := open(t, Config{Endpoints: c.Endpoints, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, Prefix: "/ballast"})
	ctx := t.Context()
	r0, err := s.Create(ctx, "/pods/a", []byte("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/pods/", r0, false)
	if err != nil {
		t.Fatal(err)
	}

	c.Stop(c.Leader())

	retry(t, 15*time.Second, "create with the leader down", func(ctx context.Context) error {
		_, err := s.Create(ctx, "/pods/b", []byte("b"), 0)
		if errors.Is(err, storage.ErrAlreadyExists) { // an earlier try went through
			return nil
		}
		return err
	})
	retry(t, 5*time.Second, "update", func(ctx context.Context) error {
		_, err := s.Update(ctx, "/pods/a", 0, func(storage.Object) ([]byte, error) { return []byte("a2"), nil })
		return err
	})
	var list storage.ListResult
	retry(t, 5*time.Second, "list", func(ctx context.Context) (err error) {
		list, err = s.List(ctx, "/pods/", storage.ListOptions{})
		return err
	})
	if len(list.Objects) != 2 || string(list.Objects[0].Value) != "a2" {
		t.Fatalf("list after the leader died: %+v", list.Objects)
	}

	// The watch carries on (the client moves it to a live member), or ends
	// as unavailable and is started again from where it got, as a
	// reflector would.
	last := r0
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for !seen["/pods/b"] || !seen["/pods/a"] {
		select {
		case e, ok := <-w.Events():
			if ok {
				seen[e.Object.Key] = true
				last = e.Revision
				continue
			}
			if !errors.Is(w.Err(), storage.ErrUnavailable) {
				t.Fatalf("watch ended: %v, want ErrUnavailable", w.Err())
			}
			retry(t, 10*time.Second, "watch again", func(context.Context) (err error) {
				w, err = s.Watch(ctx, "/pods/", last, false)
				return err
			})
		case <-deadline:
			t.Fatalf("watch saw %v after the leader died, want /pods/a and /pods/b", seen)
		}
	}
}

func TestExternalClusterTLS(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	// The cluster wants a client certificate.
	if s, err := Open(ctx, Config{Endpoints: c.Endpoints, CAFile: c.CAFile}); err == nil {
		s.Close()
		t.Fatal("Open without a client certificate succeeded")
	}
	s := open(t, Config{Endpoints: c.Endpoints, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile})
	if s.ClientURL() != "" {
		t.Fatalf("ClientURL of an external cluster = %q", s.ClientURL())
	}
	if _, err := s.Create(t.Context(), "/a", []byte("a"), time.Minute); err != nil {
		t.Fatal(err)
	}
}
