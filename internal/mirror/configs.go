package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The mirrors of a node's ConfigMaps and Secrets: one read-only mirror per
// object of the manifest directory, named "<name>-<node>" as mirror pods
// are, labelled ballast.dev/node=NODE, annotated with the file, created,
// updated when the file changes, made again at once when deleted, removed
// with its file. A mirror Secret has every key with an empty value (and the
// annotation ballast.dev/secret-data: node-local) unless the node publishes
// the values. An API server that does not let the node write them (a real
// kube-apiserver's NodeRestriction and Node authorizer) is logged once: the
// node's objects stay node-local and no pod is affected; the node asks again
// after a growing back-off.

// ConfigSource is what the agent offers of its node-local objects.
type ConfigSource interface {
	// Configs are the node's ConfigMaps and Secrets (with the Secrets'
	// values: never shown).
	Configs() []*manifest.Config
	Changed() <-chan struct{}
}

// ConfigOptions configure RunConfigs.
type ConfigOptions struct {
	Client   kubernetes.Interface
	NodeName string
	Source   ConfigSource
	// SecretData publishes the Secrets' values in their mirrors (default:
	// keys only, empty values).
	SecretData bool
	Log        *slog.Logger
	// RetryInitial and RetryMax bound the back-off after a failed write or
	// read (default 1s and 30s); ForbiddenMax the back-off before asking
	// again an API server that refused (default 10m).
	RetryInitial, RetryMax, ForbiddenMax time.Duration
}

// RunConfigs keeps the API's mirror ConfigMaps and Secrets in step with the
// node's until ctx ends. It never stops a pod and never returns an error
// for the API being away.
func RunConfigs(ctx context.Context, o ConfigOptions) error {
	if o.RetryInitial <= 0 {
		o.RetryInitial = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.ForbiddenMax <= 0 {
		o.ForbiddenMax = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &configSyncer{o: o, kick: make(chan struct{}, 1)}
	s.kinds = []*configKind{newConfigMapKind(s), newSecretKind(s)}
	return s.run(ctx)
}

type configSyncer struct {
	o       ConfigOptions
	kinds   []*configKind
	nodeUID types.UID
	kick    chan struct{}
}

func (s *configSyncer) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// configKind is the sync of one kind (ConfigMaps or Secrets).
type configKind struct {
	s        *configSyncer
	kind     manifest.ConfigKind
	resource string
	// the typed client's calls, and the desired mirror of an object
	list    func(ctx context.Context, opts metav1.ListOptions) (k8sruntime.Object, error)
	watch   func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	create  func(ctx context.Context, obj metav1.Object) error
	update  func(ctx context.Context, obj metav1.Object) error
	delete  func(ctx context.Context, ns, name string, uid types.UID) error
	build   func(c *manifest.Config, meta metav1.ObjectMeta) metav1.Object
	sameOut func(existing, desired metav1.Object) bool // data and what the node owns
	empty   k8sruntime.Object

	store cache.Store // nil until the informer runs
	stop  context.CancelFunc
	// retry is the back-off in force, retryAt when to sync again after a
	// failure; forbidden: the API server refused this node (logged once).
	retry     time.Duration
	retryAt   time.Time
	forbidden bool
	// skipped are objects that cannot be mirrored, logged once each.
	skipped map[string]bool
}

func (s *configSyncer) run(ctx context.Context) error {
	defer func() {
		for _, k := range s.kinds {
			if k.stop != nil {
				k.stop()
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := s.o.Source.Changed()
		now := time.Now()
		if s.nodeUID == "" {
			s.findNode(ctx)
		}
		next := time.Time{}
		for _, k := range s.kinds {
			if s.nodeUID != "" && !now.Before(k.retryAt) {
				k.step(ctx)
			}
			if !k.retryAt.IsZero() && (next.IsZero() || k.retryAt.Before(next)) {
				next = k.retryAt
			}
		}
		if s.nodeUID == "" {
			next = time.Now().Add(s.o.RetryInitial)
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-s.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// findNode reads the Node's UID, which mirrors name as their owner (the
// Node is registered by Run).
func (s *configSyncer) findNode(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := s.o.Client.CoreV1().Nodes().Get(cctx, s.o.NodeName, metav1.GetOptions{})
	if err != nil {
		s.o.Log.Debug("waiting for the node to be registered before mirroring its ConfigMaps and Secrets", "err", err)
		return
	}
	s.nodeUID = n.UID
}

// step starts the kind's informer if it is not running, and syncs.
func (k *configKind) step(ctx context.Context) {
	if k.store == nil && !k.start(ctx) {
		return
	}
	if err := k.sync(ctx); err != nil {
		k.failed(err)
		return
	}
	k.retry, k.retryAt = 0, time.Time{}
	if k.forbidden {
		k.forbidden = false
		k.s.o.Log.Info("the API server now takes this node's mirror "+k.resource, "node", k.s.o.NodeName)
	}
}

// failed backs off after an error; a refusal is logged once.
func (k *configKind) failed(err error) {
	o := k.s.o
	if apierrors.IsForbidden(err) {
		if !k.forbidden {
			k.forbidden = true
			o.Log.Warn(fmt.Sprintf("the API server does not let this node publish its %s (as a kube-apiserver's NodeRestriction and Node authorizer do not); they stay node-local, pods are not affected, and the node asks again later", k.resource),
				"err", err)
		}
		k.retry = min(max(2*k.retry, o.RetryMax), o.ForbiddenMax)
	} else {
		o.Log.Debug("mirroring node-local "+k.resource, "err", err)
		k.retry = min(max(2*k.retry, o.RetryInitial), o.RetryMax)
	}
	k.retryAt = time.Now().Add(k.retry)
}

// start asks for the node's mirrors and, when the API server answers,
// starts an informer on them.
func (k *configKind) start(ctx context.Context) bool {
	sel := wellknown.LabelNode + "=" + k.s.o.NodeName
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := k.list(cctx, metav1.ListOptions{LabelSelector: sel, Limit: 1})
	cancel()
	if err != nil {
		k.failed(err)
		return false
	}
	ictx, stop := context.WithCancel(ctx)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(lctx context.Context, lo metav1.ListOptions) (k8sruntime.Object, error) {
			lo.LabelSelector = sel
			return k.list(lctx, lo)
		},
		WatchFuncWithContext: func(lctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			lo.LabelSelector = sel
			return k.watch(lctx, lo)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, k.empty, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { k.s.poke() },
		UpdateFunc: func(any, any) { k.s.poke() },
		DeleteFunc: func(any) { k.s.poke() },
	})
	go inf.Run(ictx.Done())
	wctx, wcancel := context.WithTimeout(ictx, 30*time.Second)
	defer wcancel()
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		stop()
		k.failed(fmt.Errorf("listing this node's mirror %s timed out", k.resource))
		return false
	}
	k.store, k.stop = inf.GetStore(), stop
	return true
}

// sync makes the API's mirrors of this kind match the node's objects.
func (k *configKind) sync(ctx context.Context) error {
	o := k.s.o
	existing := map[string]metav1.Object{}
	for _, x := range k.store.List() {
		m := x.(metav1.Object)
		existing[m.GetNamespace()+"/"+m.GetName()] = m
	}
	want := map[string]bool{}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, c := range o.Source.Configs() {
		if c.Kind() != k.kind {
			continue
		}
		meta := c.Meta()
		name := meta.Name + "-" + strings.ToLower(o.NodeName)
		key := meta.Namespace + "/" + name
		if len(name) > validation.DNS1123SubdomainMaxLength {
			if !k.skipped[key] {
				k.skipped[key] = true
				o.Log.Warn(fmt.Sprintf("cannot mirror %s: its mirror's name %q is longer than %d characters; shorten its name", c.Key(), name, validation.DNS1123SubdomainMaxLength), "file", c.File)
			}
			continue
		}
		want[key] = true
		desired := k.build(c, k.mirrorMeta(c, name))
		cur, ok := existing[key]
		switch {
		case !ok:
			err := k.create(ctx, desired)
			if apierrors.IsAlreadyExists(err) {
				err = nil // not yet seen by the informer
			}
			if err == nil {
				o.Log.Info("mirror created", "kind", k.kind, "object", key)
			}
			keep(err)
		case cur.GetLabels()[wellknown.LabelNode] != o.NodeName:
			// Not this node's (an informer event in flight): leave it.
		case cur.GetDeletionTimestamp() != nil || immutableOf(cur) || immutableOf(desired) && !k.sameOut(cur, desired):
			if !k.sameOut(cur, desired) || cur.GetDeletionTimestamp() != nil {
				// Immutable in the API: a new version replaces it.
				keep(ignoreNotFound(k.delete(ctx, cur.GetNamespace(), cur.GetName(), cur.GetUID())))
			}
		case !k.sameOut(cur, desired):
			upd := merge(cur, desired)
			err := k.update(ctx, upd)
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				k.s.poke() // deleted or changed meanwhile: look again
				err = nil
			}
			if err == nil {
				o.Log.Info("mirror updated", "kind", k.kind, "object", key)
			}
			keep(err)
		}
	}
	for key, cur := range existing {
		if !want[key] && cur.GetLabels()[wellknown.LabelNode] == o.NodeName {
			err := ignoreNotFound(k.delete(ctx, cur.GetNamespace(), cur.GetName(), cur.GetUID()))
			if err == nil {
				o.Log.Info("mirror removed", "kind", k.kind, "object", key)
			}
			keep(err)
		}
	}
	return firstErr
}

// mirrorMeta is the metadata of an object's mirror: its own labels and
// annotations, and the node's.
func (k *configKind) mirrorMeta(c *manifest.Config, name string) metav1.ObjectMeta {
	src := c.Meta()
	m := metav1.ObjectMeta{
		Name: name, Namespace: src.Namespace,
		Labels:      maps.Clone(src.Labels),
		Annotations: maps.Clone(src.Annotations),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: k.s.o.NodeName, UID: k.s.nodeUID,
			Controller: ptr.To(true)}},
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Labels[wellknown.LabelNode] = k.s.o.NodeName
	m.Annotations[wellknown.AnnotationConfigMirror] = k.s.o.NodeName
	m.Annotations[wellknown.AnnotationConfigSource] = wellknown.ConfigSourceFile
	m.Annotations[wellknown.AnnotationManifest] = c.File
	return m
}

func immutableOf(o metav1.Object) bool {
	switch t := o.(type) {
	case *corev1.ConfigMap:
		return t.Immutable != nil && *t.Immutable
	case *corev1.Secret:
		return t.Immutable != nil && *t.Immutable
	}
	return false
}

// sameMeta tells whether cur has the labels and annotations of desired
// (others set through the API are left alone), and no node annotation
// desired lacks.
func sameMeta(cur, desired metav1.Object) bool {
	for k, v := range desired.GetLabels() {
		if cur.GetLabels()[k] != v {
			return false
		}
	}
	for k, v := range desired.GetAnnotations() {
		if cur.GetAnnotations()[k] != v {
			return false
		}
	}
	for k := range cur.GetAnnotations() {
		if _, ok := desired.GetAnnotations()[k]; !ok && (strings.HasPrefix(k, "ballast.dev/") || strings.HasPrefix(k, wellknown.ConfigAnnotationPrefix)) {
			return false
		}
	}
	return true
}

// merge is cur with desired's data, labels and annotations (and those only
// the node sets dropped when desired lacks them), for an update.
func merge(cur, desired metav1.Object) metav1.Object {
	var out metav1.Object
	switch d := desired.(type) {
	case *corev1.ConfigMap:
		c := cur.(*corev1.ConfigMap).DeepCopy()
		c.Data, c.BinaryData, c.Immutable = d.Data, d.BinaryData, d.Immutable
		out = c
	case *corev1.Secret:
		c := cur.(*corev1.Secret).DeepCopy()
		c.Data, c.Type, c.Immutable = d.Data, d.Type, d.Immutable
		out = c
	}
	labels, annotations := maps.Clone(out.GetLabels()), maps.Clone(out.GetAnnotations())
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	for k := range annotations {
		if _, ok := desired.GetAnnotations()[k]; !ok && (strings.HasPrefix(k, "ballast.dev/") || strings.HasPrefix(k, wellknown.ConfigAnnotationPrefix)) {
			delete(annotations, k)
		}
	}
	maps.Copy(labels, desired.GetLabels())
	maps.Copy(annotations, desired.GetAnnotations())
	out.SetLabels(labels)
	out.SetAnnotations(annotations)
	return out
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func deleteOptions(uid types.UID) metav1.DeleteOptions {
	return metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}}
}

func newConfigMapKind(s *configSyncer) *configKind {
	c := s.o.Client.CoreV1()
	return &configKind{
		s: s, kind: manifest.KindConfigMap, resource: "ConfigMaps", empty: &corev1.ConfigMap{}, skipped: map[string]bool{},
		list: func(ctx context.Context, opts metav1.ListOptions) (k8sruntime.Object, error) {
			return c.ConfigMaps(metav1.NamespaceAll).List(ctx, opts)
		},
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return c.ConfigMaps(metav1.NamespaceAll).Watch(ctx, opts)
		},
		create: func(ctx context.Context, o metav1.Object) error {
			_, err := c.ConfigMaps(o.GetNamespace()).Create(ctx, o.(*corev1.ConfigMap), metav1.CreateOptions{})
			return err
		},
		update: func(ctx context.Context, o metav1.Object) error {
			_, err := c.ConfigMaps(o.GetNamespace()).Update(ctx, o.(*corev1.ConfigMap), metav1.UpdateOptions{})
			return err
		},
		delete: func(ctx context.Context, ns, name string, uid types.UID) error {
			return c.ConfigMaps(ns).Delete(ctx, name, deleteOptions(uid))
		},
		build: func(cfg *manifest.Config, meta metav1.ObjectMeta) metav1.Object {
			src := cfg.ConfigMap
			return &corev1.ConfigMap{ObjectMeta: meta, Data: maps.Clone(src.Data), BinaryData: maps.Clone(src.BinaryData), Immutable: src.Immutable}
		},
		sameOut: func(cur, desired metav1.Object) bool {
			a, b := cur.(*corev1.ConfigMap), desired.(*corev1.ConfigMap)
			return equalStrings(a.Data, b.Data) && equalBytes(a.BinaryData, b.BinaryData) && immutableOf(a) == immutableOf(b) && sameMeta(a, b)
		},
	}
}

func newSecretKind(s *configSyncer) *configKind {
	c := s.o.Client.CoreV1()
	return &configKind{
		s: s, kind: manifest.KindSecret, resource: "Secrets", empty: &corev1.Secret{}, skipped: map[string]bool{},
		list: func(ctx context.Context, opts metav1.ListOptions) (k8sruntime.Object, error) {
			return c.Secrets(metav1.NamespaceAll).List(ctx, opts)
		},
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return c.Secrets(metav1.NamespaceAll).Watch(ctx, opts)
		},
		create: func(ctx context.Context, o metav1.Object) error {
			_, err := c.Secrets(o.GetNamespace()).Create(ctx, o.(*corev1.Secret), metav1.CreateOptions{})
			return err
		},
		update: func(ctx context.Context, o metav1.Object) error {
			_, err := c.Secrets(o.GetNamespace()).Update(ctx, o.(*corev1.Secret), metav1.UpdateOptions{})
			return err
		},
		delete: func(ctx context.Context, ns, name string, uid types.UID) error {
			return c.Secrets(ns).Delete(ctx, name, deleteOptions(uid))
		},
		build: func(cfg *manifest.Config, meta metav1.ObjectMeta) metav1.Object {
			src := cfg.Secret
			if !s.o.SecretData {
				src = manifest.Redacted(src)
				meta.Annotations[wellknown.AnnotationSecretData] = wellknown.SecretDataNodeLocal
			}
			return &corev1.Secret{ObjectMeta: meta, Type: src.Type, Data: maps.Clone(src.Data), Immutable: src.Immutable}
		},
		sameOut: func(cur, desired metav1.Object) bool {
			a, b := cur.(*corev1.Secret), desired.(*corev1.Secret)
			return a.Type == b.Type && equalBytes(a.Data, b.Data) && immutableOf(a) == immutableOf(b) && sameMeta(a, b)
		},
	}
}

// equalStrings and equalBytes compare as the API gives maps back (an empty
// map and none are the same).
func equalStrings(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || maps.Equal(a, b))
}

func equalBytes(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}
