package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/bootstrap"
	"github.com/ballast-dev/ballast/internal/storage"
)

// withJoin serves `ballast join`'s endpoints (internal/bootstrap) beside the
// API: they authenticate with bootstrap tokens, which the API never accepts.
func withJoin(api http.Handler, join *bootstrap.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bootstrap.Handles(r.URL.Path) {
			join.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// nodeReady tells whether the Node name is stored with condition Ready True.
func nodeReady(ctx context.Context, store storage.Store, name string) (bool, error) {
	o, err := store.Get(ctx, "/nodes/"+name)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var n corev1.Node
	if err := json.Unmarshal(o.Value, &n); err != nil {
		return false, fmt.Errorf("node %s: %w", name, err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}
