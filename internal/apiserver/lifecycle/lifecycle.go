// Package lifecycle is the API server's node lifecycle: a node whose Lease
// (or, without one, its Ready heartbeat) is not renewed within
// NodeGracePeriod, by this server's clock, turns Unknown and its pods not
// Ready, as kube-apiserver's node lifecycle controller does. The changes to
// a node and a pod are pure functions (nodeLostConditions, podLost); the
// loop reads storage and the pods' watch cache.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/ballast-dev/ballast/internal/apiserver/rest"
	"github.com/ballast-dev/ballast/internal/apiserver/watchcache"
	"github.com/ballast-dev/ballast/internal/storage"
)

const (
	// NodeGracePeriod is how long a node's Lease may go unrenewed before
	// the node is Unknown and its pods not Ready.
	NodeGracePeriod = 40 * time.Second
	// lifecyclePeriod is how often the lifecycle loop looks at nodes.
	lifecyclePeriod = 5 * time.Second
	// NodeLostReason is the pod status reason of a pod whose node stopped reporting.
	NodeLostReason = "NodeLost"
)

// Config is what the node lifecycle needs.
type Config struct {
	Store storage.Store
	// Pods is the pods' watch cache, indexed by spec.nodeName.
	Pods *watchcache.Cache
	Log  *slog.Logger
	Now  func() time.Time
}

// Lifecycle is the node lifecycle loop and its memory: when each node was
// last seen renewing, by this server's clock (so clock skew between node
// and server does not matter; a restarted server waits a full grace
// period).
type Lifecycle struct {
	store storage.Store
	pods  *watchcache.Cache
	log   *slog.Logger
	now   func() time.Time
	seen  map[string]renewal
}

// New returns the node lifecycle of cfg.Store.
func New(cfg Config) *Lifecycle {
	return &Lifecycle{store: cfg.Store, pods: cfg.Pods, log: cfg.Log, now: cfg.Now}
}

// renewal is what was last seen of a node renewing, and when.
type renewal struct {
	marker string // the Lease's resourceVersion, or the Ready heartbeat
	at     time.Time
	lost   bool // marked lost since (not again until it renews)
}

// Run checks the nodes every few seconds until ctx ends.
func (l *Lifecycle) Run(ctx context.Context) error {
	t := time.NewTicker(lifecyclePeriod)
	defer t.Stop()
	for {
		if err := l.CheckNodes(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("node lifecycle: checking nodes", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckNodes marks the nodes whose Lease has not been renewed within
// NodeGracePeriod as Unknown, and their pods as not Ready.
func (l *Lifecycle) CheckNodes(ctx context.Context) error {
	now := l.now()
	if l.seen == nil {
		l.seen = map[string]renewal{}
	}
	nodes, err := l.store.List(ctx, "/nodes/", storage.ListOptions{})
	if err != nil {
		return err
	}
	leases, err := l.store.List(ctx, "/leases/"+corev1.NamespaceNodeLease+"/", storage.ListOptions{})
	if err != nil {
		return err
	}
	leaseRV := map[string]string{}
	for _, so := range leases.Objects {
		leaseRV[path.Base(so.Key)] = fmt.Sprint(so.Revision) // a Lease's name is its key's last segment
	}
	present := map[string]bool{}
	var errs []error
	for _, so := range nodes.Objects {
		var n corev1.Node
		n.Name = path.Base(so.Key)
		present[n.Name] = true
		marker, ok := leaseRV[n.Name]
		if !ok { // no Lease: the node's Ready heartbeat tells
			if err := json.Unmarshal(so.Value, &n); err != nil {
				continue
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					marker = "heartbeat:" + c.LastHeartbeatTime.UTC().String()
				}
			}
		}
		r, ok := l.seen[n.Name]
		if !ok || r.marker != marker {
			l.seen[n.Name] = renewal{marker: marker, at: now}
			continue
		}
		if r.lost || now.Sub(r.at) < NodeGracePeriod {
			continue
		}
		if err := l.markNodeLost(ctx, n.Name, now); err != nil {
			errs = append(errs, err)
			continue
		}
		r.lost = true
		l.seen[n.Name] = r
	}
	for name := range l.seen {
		if !present[name] {
			delete(l.seen, name)
		}
	}
	return errors.Join(errs...)
}

var nodeConditionsToUnknown = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// markNodeLost sets the node's conditions Unknown and its pods not Ready.
func (l *Lifecycle) markNodeLost(ctx context.Context, name string, now time.Time) error {
	_, err := l.store.Update(ctx, "/nodes/"+name, 0, func(cur storage.Object) ([]byte, error) {
		var n corev1.Node
		if err := json.Unmarshal(cur.Value, &n); err != nil {
			return nil, err
		}
		if !nodeLostConditions(&n, now) {
			return cur.Value, nil
		}
		return json.Marshal(&n)
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("node %s: %w", name, err)
	}
	keys, err := l.podKeysOn(ctx, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, key := range keys {
		_, err := l.store.Update(ctx, key, 0, func(cur storage.Object) ([]byte, error) {
			var p corev1.Pod
			if err := json.Unmarshal(cur.Value, &p); err != nil {
				return nil, err
			}
			if !podLost(&p, now) {
				return cur.Value, nil
			}
			return json.Marshal(&p)
		})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			errs = append(errs, fmt.Errorf("pod %s: %w", key, err))
		}
	}
	if len(errs) == 0 {
		l.log.Info("node lifecycle: node stopped renewing its lease", "node", name, "grace", NodeGracePeriod)
	}
	return errors.Join(errs...)
}

// podKeysOn returns the storage keys of the pods bound to node: from the
// pods' watch cache (its spec.nodeName index) once it has reached etcd's
// current revision, else from etcd.
func (l *Lifecycle) podKeysOn(ctx context.Context, node string) ([]string, error) {
	var keys []string
	cur, err := l.store.Revision(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, rest.FreshWait)
	err = l.pods.WaitFresh(wctx, cur)
	cancel()
	if err == nil {
		items, _, err := l.pods.List(&watchcache.Filter{Prefix: "/pods/", Field: fields.OneTermEqualSelector("spec.nodeName", node)})
		if err == nil {
			for _, it := range items {
				keys = append(keys, "/pods/"+it.Fields["metadata.namespace"]+"/"+it.Fields["metadata.name"])
			}
			return keys, nil
		}
	}
	pods, err := l.store.List(ctx, "/pods/", storage.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, so := range pods.Objects {
		var p corev1.Pod
		if json.Unmarshal(so.Value, &p) == nil && p.Spec.NodeName == node {
			keys = append(keys, so.Key)
		}
	}
	return keys, nil
}

// nodeLostConditions sets a node's conditions Unknown; it reports whether
// anything changed.
func nodeLostConditions(n *corev1.Node, now time.Time) bool {
	changed := false
	t := metav1.NewTime(now)
	hasReady := false
	for i := range n.Status.Conditions {
		c := &n.Status.Conditions[i]
		if c.Type == corev1.NodeReady {
			hasReady = true
		}
		if !containsCond(nodeConditionsToUnknown, c.Type) || c.Status == corev1.ConditionUnknown {
			continue
		}
		c.Status, c.Reason, c.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
		c.LastTransitionTime = t
		changed = true
	}
	if !hasReady {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown",
			Message: "Kubelet never posted node status.", LastHeartbeatTime: t, LastTransitionTime: t})
		changed = true
	}
	return changed
}

func containsCond(s []corev1.NodeConditionType, c corev1.NodeConditionType) bool {
	for _, x := range s {
		if x == c {
			return true
		}
	}
	return false
}

// podLost marks a pod of a lost node not ready; it reports whether anything changed.
func podLost(p *corev1.Pod, now time.Time) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	changed := false
	t := metav1.NewTime(now)
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status != corev1.ConditionFalse {
			c.Status, c.Reason = corev1.ConditionFalse, "NodeNotReady"
			c.Message = fmt.Sprintf("node %s stopped renewing its lease: the pod's state is unknown", p.Spec.NodeName)
			c.LastTransitionTime = t
			changed = true
		}
	}
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Ready {
			p.Status.ContainerStatuses[i].Ready = false
			changed = true
		}
	}
	if p.Status.Reason != NodeLostReason {
		p.Status.Reason = NodeLostReason
		p.Status.Message = fmt.Sprintf("Node %s which was running pod %s is unresponsive", p.Spec.NodeName, p.Name)
		changed = true
	}
	return changed
}
