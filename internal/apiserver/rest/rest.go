package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/storage"
	"github.com/ballast-dev/ballast/internal/validation"
)

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	o, err := request.Get(r.Context(), s.store, rq.Kind, rq.Namespace, rq.Name)
	if err != nil {
		return err
	}
	return request.WriteObject(w, r, rq, http.StatusOK, o, s.now())
}

// ---- create

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	o, warnings, fv, dry, err := request.ReadObject(r, rq)
	if err != nil {
		return err
	}
	if rq.Kind.Info.Namespaced {
		switch o.GetNamespace() {
		case "":
			o.SetNamespace(rq.Namespace)
		case rq.Namespace:
		default:
			return request.BadRequest("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", o.GetNamespace(), rq.Namespace)
		}
		if rq.Namespace == "" {
			return request.NewStatus(http.StatusNotFound, metav1.StatusReasonNotFound,
				fmt.Sprintf("%s are namespaced: POST to /%s/namespaces/NAMESPACE/%s", rq.Resource, apiRoot(rq), rq.Resource))
		}
	} else {
		o.SetNamespace("")
	}
	rq.Name = o.GetName()
	if rq.Kind.CreateOnly {
		if !request.Authorize(w, rq, s.cfg.Authorize) {
			return nil
		}
		return s.cfg.Review(w, r, rq, o)
	}
	if !request.Authorize(w, rq, s.cfg.Authorize) {
		return nil
	}
	if err := s.cfg.Admission.Admit(r.Context(), rq, nil, o); err != nil {
		return err
	}
	created, err := s.createObject(r.Context(), rq.Kind, o, dry)
	if err != nil {
		return err
	}
	if fv == "Warn" {
		request.AddWarnings(w, warnings)
	}
	return request.WriteObject(w, r, rq, http.StatusCreated, created, s.now())
}

func apiRoot(rq *request.Request) string {
	if rq.Group == "" {
		return "api/" + rq.Version
	}
	return "apis/" + rq.Group + "/" + rq.Version
}

// createObject stores a new object, setting what the server owns.
func (s *Server) createObject(ctx context.Context, k *kinds.Kind, o kinds.Object, dry bool) (kinds.Object, error) {
	o.SetUID(uuid.NewUUID())
	o.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(1e9)))
	o.SetResourceVersion("")
	o.SetDeletionTimestamp(nil)
	o.SetDeletionGracePeriodSeconds(nil)
	o.SetManagedFields(nil)
	o.SetGeneration(0)
	o.SetSelfLink("")
	prepareCreate(o)
	k.SetTypeMeta(o)
	generated := o.GetName() == "" && o.GetGenerateName() != ""
	for attempt := 0; ; attempt++ {
		if generated {
			o.SetName(o.GetGenerateName() + rand.String(5))
		}
		if err := validateObject(k, o); err != nil {
			return nil, err
		}
		if k.Info.Namespaced {
			if err := s.namespaceExists(ctx, o.GetNamespace()); err != nil {
				return nil, err
			}
		}
		if dry {
			return o, nil
		}
		value, err := k.EncodeStored(o)
		if err != nil {
			return nil, request.InternalError(err)
		}
		if err := request.CheckStoredSize(k, o.GetName(), value); err != nil {
			return nil, err
		}
		rev, err := s.store.Create(ctx, k.Key(o.GetNamespace(), o.GetName()), value, k.TTL)
		if errors.Is(err, storage.ErrAlreadyExists) && generated && attempt < 5 {
			continue
		}
		if err != nil {
			if errors.Is(err, storage.ErrAlreadyExists) && generated {
				return nil, request.FromAPIErr(apierrors.NewServerTimeoutForKind(k.Info.GVK().GroupKind(), "POST", 1))
			}
			return nil, request.StorageError(err, k.GroupResource(), o.GetName())
		}
		o.SetResourceVersion(strconv.FormatInt(rev, 10))
		return o, nil
	}
}

func (s *Server) namespaceExists(ctx context.Context, ns string) error {
	_, err := s.store.Get(ctx, "/namespaces/"+ns)
	if errors.Is(err, storage.ErrNotFound) {
		st := request.NotFound(corev1.Resource("namespaces"), ns)
		st.Status.Message += "; create it first with `kubectl create namespace " + ns + "`"
		return st
	}
	if err != nil {
		return request.StorageError(err, corev1.Resource("namespaces"), ns)
	}
	return nil
}

func validateObject(k *kinds.Kind, o kinds.Object) error {
	nameFn := apivalidation.NameIsDNSSubdomain
	if k.Info.Resource == "namespaces" {
		nameFn = apivalidation.ValidateNamespaceName
	}
	meta, ok := o.(metav1.ObjectMetaAccessor)
	if !ok {
		return request.InternalError(fmt.Errorf("%T has no ObjectMeta", o))
	}
	errs := apivalidation.ValidateObjectMetaAccessor(meta.GetObjectMeta(), k.Info.Namespaced, nameFn, field.NewPath("metadata"))
	if p, ok := o.(*corev1.Pod); ok {
		errs = append(errs, validatePod(p)...)
	}
	errs = append(errs, validateConfig(o)...)
	if len(errs) > 0 {
		return request.FromAPIErr(apierrors.NewInvalid(k.Info.GVK().GroupKind(), o.GetName(), errs))
	}
	return nil
}

// validatePod validates a pod with the node's rules (internal/validation),
// so that a pod is accepted or refused alike from a file and through the
// API, and turns what is wrong into field errors for a 422 Status.
func validatePod(p *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	for _, e := range validation.ValidatePod(p) {
		errs = append(errs, fieldError(e.Field, e.Msg))
	}
	return errs
}

// fieldErrorTypes are the kinds of field error, in the order their texts
// are tried as a message's prefix.
var fieldErrorTypes = []field.ErrorType{
	field.ErrorTypeRequired, field.ErrorTypeDuplicate, field.ErrorTypeInvalid, field.ErrorTypeNotSupported,
	field.ErrorTypeForbidden, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeNotFound,
}

// fieldError makes a field error of a manifest message, which starts with
// the error type's text as Kubernetes words it ("Invalid value: ...").
func fieldError(path, msg string) *field.Error {
	for _, t := range fieldErrorTypes {
		if detail, ok := strings.CutPrefix(msg, t.String()+": "); ok {
			return &field.Error{Type: t, Field: path, BadValue: field.OmitValueType{}, Detail: detail}
		}
	}
	return &field.Error{Type: field.ErrorTypeInvalid, Field: path, BadValue: field.OmitValueType{}, Detail: msg}
}

// ---- update and patch

// errNoop aborts a storage update that would not change the object.
var errNoop = errors.New("no change")

func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	in, warnings, fv, dry, err := request.ReadObject(r, rq)
	if err != nil {
		return err
	}
	if in.GetName() != rq.Name {
		return request.BadRequest("the name of the object (%s) does not match the name on the URL (%s)", in.GetName(), rq.Name)
	}
	if rq.Kind.Info.Namespaced && in.GetNamespace() != "" && in.GetNamespace() != rq.Namespace {
		return request.BadRequest("the namespace of the object (%s) does not match the namespace on the request (%s)", in.GetNamespace(), rq.Namespace)
	}
	var expect int64
	if rv := in.GetResourceVersion(); rv != "" {
		expect, err = strconv.ParseInt(rv, 10, 64)
		if err != nil || expect <= 0 {
			return request.FromAPIErr(apierrors.NewInvalid(rq.Kind.Info.GVK().GroupKind(), rq.Name, field.ErrorList{
				field.Invalid(field.NewPath("metadata", "resourceVersion"), rv, "must be a resourceVersion returned by the server")}))
		}
	}
	out, err := s.updateObject(r.Context(), rq, expect, dry, func(cur kinds.Object) (kinds.Object, error) {
		return copyObject(rq.Kind, in), nil
	})
	if err != nil {
		return err
	}
	if fv == "Warn" {
		request.AddWarnings(w, warnings)
	}
	return request.WriteObject(w, r, rq, http.StatusOK, out, s.now())
}

// copyObject copies o as k's Go type: a deep copy when it is already of
// that type (a request decoded for k), else through its JSON.
func copyObject(k *kinds.Kind, o kinds.Object) kinds.Object {
	out := k.NewObj()
	if reflect.TypeOf(o) == reflect.TypeOf(out) {
		return o.DeepCopyObject().(kinds.Object)
	}
	raw, _ := json.Marshal(o)
	_ = json.Unmarshal(raw, out)
	return out
}

// updateObject runs a read-modify-write of rq's object: mutate returns the
// object the client asks for (from the current one), then server-owned
// fields are kept, admission runs and the result is stored.
func (s *Server) updateObject(ctx context.Context, rq *request.Request, expect int64, dry bool, mutate func(cur kinds.Object) (kinds.Object, error)) (kinds.Object, error) {
	k := rq.Kind
	var result kinds.Object
	apply := func(cur storage.Object) ([]byte, error) {
		old, err := k.DecodeStored(cur.Value, cur.Revision)
		if err != nil {
			return nil, err
		}
		in, err := mutate(old)
		if err != nil {
			return nil, err
		}
		if rv := in.GetResourceVersion(); rv != "" && rv != old.GetResourceVersion() {
			return nil, request.Conflict(k.GroupResource(), rq.Name, request.ModifiedMsg)
		}
		next := prepareUpdate(k, rq.Subresource, old, in)
		if err := validateObject(k, next); err != nil {
			return nil, err
		}
		if err := s.cfg.Admission.Admit(ctx, rq, old, next); err != nil {
			return nil, err
		}
		value, err := k.EncodeStored(next)
		if err != nil {
			return nil, err
		}
		if err := request.CheckStoredSize(k, rq.Name, value); err != nil {
			return nil, err
		}
		result = next
		oldValue, _ := k.EncodeStored(old)
		if dry || string(oldValue) == string(value) {
			result = old
			if dry {
				result = next
			}
			return nil, errNoop
		}
		return value, nil
	}
	so, err := s.store.Update(ctx, k.Key(rq.Namespace, rq.Name), expect, apply)
	if errors.Is(err, errNoop) {
		return result, nil
	}
	if err != nil {
		return nil, request.StorageError(err, k.GroupResource(), rq.Name)
	}
	out, err := k.DecodeStored(so.Value, so.Revision)
	if err != nil {
		return nil, request.InternalError(err)
	}
	return out, nil
}

// prepareUpdate builds the object to store from the old one and the one the
// client sent, keeping what clients may not change.
func prepareUpdate(k *kinds.Kind, sub string, old, in kinds.Object) kinds.Object {
	if sub == "status" {
		next := onlyStatus(k, old, in)
		k.SetTypeMeta(next)
		return next
	}
	next := copyObject(k, in)
	next.SetUID(old.GetUID())
	next.SetName(old.GetName())
	next.SetNamespace(old.GetNamespace())
	next.SetCreationTimestamp(old.GetCreationTimestamp())
	next.SetDeletionTimestamp(old.GetDeletionTimestamp())
	next.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
	next.SetGeneration(old.GetGeneration())
	next.SetManagedFields(nil)
	next.SetSelfLink("")
	next.SetResourceVersion(old.GetResourceVersion())
	if k.Status {
		keepStatus(next, old)
	}
	bumpGeneration(old, next)
	k.SetTypeMeta(next)
	return next
}

// ---- delete

func (s *Server) deleteOptions(r *http.Request, rq *request.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, _, err := request.ReadBody(r, rq.Kind, false)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, opts); err != nil {
			return nil, request.BadRequest("the request body is not valid DeleteOptions: %v", err)
		}
	}
	q := rq.Query
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, request.BadRequest("gracePeriodSeconds %q is not an integer", v)
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v, ok := q["dryRun"]; ok {
		opts.DryRun = v
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return nil, request.BadRequest("propagationPolicy %q is not one of Orphan, Background, Foreground", *opts.PropagationPolicy)
		}
	}
	return opts, nil
}

func (s *Server) serveDelete(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	opts, err := s.deleteOptions(r, rq)
	if err != nil {
		return err
	}
	dry, err := request.DryRun(opts.DryRun)
	if err != nil {
		return err
	}
	k := rq.Kind
	if k.Info.Resource == "namespaces" {
		for _, n := range SystemNamespaces {
			if n == rq.Name {
				return request.Forbidden(k.GroupResource(), rq.Name, "this namespace may not be deleted")
			}
		}
	}
	deleted, err := s.deleteObject(r.Context(), rq, rq.Name, opts, dry)
	if err != nil {
		return err
	}
	if k.ReturnDeleted {
		return request.WriteObject(w, r, rq, http.StatusOK, deleted, s.now())
	}
	st := metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusOK, Details: &metav1.StatusDetails{
		Name: rq.Name, Group: rq.Group, Kind: rq.Resource, UID: deleted.GetUID()}}
	request.WriteStatus(w, st)
	return nil
}

// deleteObject deletes one object after checking preconditions and
// admission; a pod on a node is deleted gracefully (see podDeletion) and
// returned as it now is.
func (s *Server) deleteObject(ctx context.Context, rq *request.Request, name string, opts *metav1.DeleteOptions, dry bool) (kinds.Object, error) {
	k := rq.Kind
	pre := opts.Preconditions
	key := k.Key(rq.Namespace, name)
	for attempt := 0; ; attempt++ {
		cur, err := s.store.Get(ctx, key)
		if err != nil {
			return nil, request.StorageError(err, k.GroupResource(), name)
		}
		o, err := k.DecodeStored(cur.Value, cur.Revision)
		if err != nil {
			return nil, request.InternalError(err)
		}
		if pre != nil && pre.UID != nil && *pre.UID != o.GetUID() {
			return nil, request.Conflict(k.GroupResource(), name, fmt.Sprintf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pre.UID, o.GetUID()))
		}
		if pre != nil && pre.ResourceVersion != nil && *pre.ResourceVersion != o.GetResourceVersion() {
			return nil, request.Conflict(k.GroupResource(), name, fmt.Sprintf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pre.ResourceVersion, o.GetResourceVersion()))
		}
		if err := s.cfg.Admission.Admit(ctx, &request.Request{Kind: k, Group: rq.Group, Resource: rq.Resource, Namespace: rq.Namespace,
			Name: name, Verb: "delete", User: rq.User}, o, nil); err != nil {
			return nil, err
		}
		if p, ok := o.(*corev1.Pod); ok {
			switch podDeletion(p, opts.GracePeriodSeconds, s.now()) {
			case deletePending:
				return o, nil
			case deleteGracefully:
				if dry {
					return o, nil
				}
				out, err := s.markDeleting(ctx, k, key, cur.Revision, o)
				if errors.Is(err, storage.ErrConflict) && attempt < 10 {
					continue // changed since read: decide again
				}
				return out, err
			}
		}
		if dry {
			return o, nil
		}
		if k.Info.Resource == "namespaces" {
			if err := s.deleteNamespaceContents(ctx, name); err != nil {
				return nil, err
			}
		}
		_, err = s.store.Delete(ctx, key, cur.Revision)
		if errors.Is(err, storage.ErrConflict) && attempt < 10 {
			continue // changed between Get and Delete: check again
		}
		if err != nil {
			return nil, request.StorageError(err, k.GroupResource(), name)
		}
		return o, nil
	}
}

// markDeleting stores o, with its deletion fields set, over the object at
// rev (storage.ErrConflict when it changed).
func (s *Server) markDeleting(ctx context.Context, k *kinds.Kind, key string, rev int64, o kinds.Object) (kinds.Object, error) {
	value, err := k.EncodeStored(o)
	if err != nil {
		return nil, request.InternalError(err)
	}
	so, err := s.store.Update(ctx, key, rev, func(storage.Object) ([]byte, error) { return value, nil })
	if errors.Is(err, storage.ErrConflict) {
		return nil, err
	}
	if err != nil {
		return nil, request.StorageError(err, k.GroupResource(), o.GetName())
	}
	out, err := k.DecodeStored(so.Value, so.Revision)
	if err != nil {
		return nil, request.InternalError(err)
	}
	return out, nil
}

// deleteNamespaceContents removes every object in a namespace being deleted.
func (s *Server) deleteNamespaceContents(ctx context.Context, ns string) error {
	seen := map[string]bool{}
	for _, k := range s.kinds {
		if !k.Info.Namespaced || k.CreateOnly || seen[k.Prefix] {
			continue
		}
		seen[k.Prefix] = true
		cont := ""
		for {
			res, err := s.store.List(ctx, k.ListPrefix(ns), storage.ListOptions{Limit: 500, Continue: cont})
			if err != nil {
				return request.StorageError(err, k.GroupResource(), "")
			}
			for _, o := range res.Objects {
				if _, err := s.store.Delete(ctx, o.Key, 0); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return request.StorageError(err, k.GroupResource(), o.Key)
				}
			}
			if res.Continue == "" {
				break
			}
			cont = res.Continue
		}
	}
	return nil
}

func (s *Server) serveDeleteCollection(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	opts, err := s.deleteOptions(r, rq)
	if err != nil {
		return err
	}
	dry, err := request.DryRun(opts.DryRun)
	if err != nil {
		return err
	}
	sel, err := request.ParseSelectors(rq.Kind, rq.Query)
	if err != nil {
		return err
	}
	k := rq.Kind
	var items []kinds.Object
	cont := ""
	var rev int64
	for {
		res, err := s.store.List(r.Context(), k.ListPrefix(rq.Namespace), storage.ListOptions{Limit: 500, Continue: cont, Revision: rev})
		if err != nil {
			return request.StorageError(err, k.GroupResource(), "")
		}
		rev = res.Revision
		for _, so := range res.Objects {
			o, err := k.DecodeStored(so.Value, so.Revision)
			if err != nil {
				return request.InternalError(err)
			}
			if !sel.Matches(k, o) {
				continue
			}
			sub := *rq
			sub.Namespace = o.GetNamespace()
			d, err := s.deleteObject(r.Context(), &sub, o.GetName(), opts, dry)
			if err != nil {
				var se *request.Error
				if errors.As(err, &se) && se.Status.Reason == metav1.StatusReasonNotFound {
					continue
				}
				return err
			}
			items = append(items, d)
		}
		if res.Continue == "" {
			break
		}
		cont = res.Continue
	}
	cur, err := s.store.Revision(r.Context())
	if err != nil {
		return request.StorageError(err, k.GroupResource(), "")
	}
	return request.WriteList(w, r, rq, metav1.ListMeta{ResourceVersion: strconv.FormatInt(cur, 10)}, items, s.now())
}

// prepareCreate sets what the server owns on a new object.
func prepareCreate(o kinds.Object) {
	switch t := o.(type) {
	case *corev1.Secret:
		validation.MergeStringData(t)
	case *corev1.Pod:
		// The node's defaults: one implementation for files and the API.
		validation.SetDefaults(t)
		t.Generation = 1
		t.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podstatus.QOSClass(t)}
	case *corev1.Namespace:
		if len(t.Spec.Finalizers) == 0 {
			t.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		}
		t.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	case *corev1.Node:
		// Dynamic kubelet config is gone; kube-apiserver drops the field too.
		//lint:ignore SA1019 clearing the removed field is the point
		t.Spec.ConfigSource = nil
	}
}

// keepStatus copies src's status into dst (PUT on the object keeps the old status).
func keepStatus(dst, src kinds.Object) {
	switch d := dst.(type) {
	case *corev1.Pod:
		d.Status = src.(*corev1.Pod).Status
	case *corev1.Node:
		d.Status = src.(*corev1.Node).Status
	case *corev1.Namespace:
		d.Status = src.(*corev1.Namespace).Status
	}
}

// onlyStatus returns old with new's status (an update of the status subresource).
func onlyStatus(k *kinds.Kind, oldObj, newObj kinds.Object) kinds.Object {
	out := copyObject(k, oldObj)
	keepStatus(out, newObj)
	return out
}

// specChanged reports whether an update changes the object's spec (pods bump generation).
func bumpGeneration(oldObj, newObj kinds.Object) {
	op, ok1 := oldObj.(*corev1.Pod)
	np, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	a, _ := json.Marshal(op.Spec)
	b, _ := json.Marshal(np.Spec)
	if string(a) != string(b) {
		np.Generation = op.Generation + 1
	}
}

// validateConfig validates a ConfigMap or Secret with the node's rules.
func validateConfig(o kinds.Object) field.ErrorList {
	var found validation.ErrorList
	switch t := o.(type) {
	case *corev1.ConfigMap:
		found = validation.ValidateConfigMap(t, "")
	case *corev1.Secret:
		found = validation.ValidateSecret(t, "")
	default:
		return nil
	}
	var errs field.ErrorList
	for _, e := range found {
		errs = append(errs, fieldError(e.Field, e.Msg))
	}
	return errs
}

// SystemNamespaces exist from the start and cannot be deleted.
var SystemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

func (s *Server) EnsureNamespaces(ctx context.Context) error {
	k := s.kinds[schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}]
	for _, name := range SystemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if _, err := s.createObject(ctx, k, ns, false); err != nil {
			var se *request.Error
			if errors.As(err, &se) && se.Status.Reason == metav1.StatusReasonAlreadyExists {
				continue
			}
			return fmt.Errorf("apiserver: creating namespace %q: %w", name, err)
		}
	}
	return nil
}
