// Package tables prints served objects as meta.k8s.io/v1 Tables, the
// server-side printing `kubectl get` asks for, with the columns
// kube-apiserver uses (wide columns have priority 1; kubectl shows them
// with -o wide).
package tables

import (
	"encoding/json"
	"fmt"
	"mime"
	"sort"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/printers"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// ContentType is the media type of a Table response.
const ContentType = "application/json;as=Table;v=v1;g=meta.k8s.io"

// WantsTable reports whether an Accept header asks for a Table (v1 or
// v1beta1), and which version to answer with: the first acceptable media
// type wins, so "application/json" before the Table form means no table.
func WantsTable(accept string) (ok bool, version string) {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt != "application/json" {
			if mt == "*/*" || mt == "application/*" {
				return false, ""
			}
			continue
		}
		if params["as"] == "" {
			return false, ""
		}
		if params["as"] == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
			return true, params["v"]
		}
	}
	return false, ""
}

// ParseIncludeObject reads the includeObject query parameter; empty means
// Metadata, kube-apiserver's default.
func ParseIncludeObject(s string) (metav1.IncludeObjectPolicy, error) {
	switch p := metav1.IncludeObjectPolicy(s); p {
	case "":
		return metav1.IncludeMetadata, nil
	case metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
		return p, nil
	}
	return "", fmt.Errorf("includeObject must be one of None, Metadata or Object, not %q", s)
}

var (
	nameDoc    = metav1.ObjectMeta{}.SwaggerDoc()["name"]
	createdDoc = metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]
	nameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: nameDoc}
	ageColumn  = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: createdDoc}
	wide       = func(c metav1.TableColumnDefinition) metav1.TableColumnDefinition { c.Priority = 1; return c }
	podColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
		{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
		{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
		ageColumn,
		wide(metav1.TableColumnDefinition{Name: "IP", Type: "string", Description: corev1.PodStatus{}.SwaggerDoc()["podIP"]}),
		wide(metav1.TableColumnDefinition{Name: "Node", Type: "string", Description: corev1.PodSpec{}.SwaggerDoc()["nodeName"]}),
		wide(metav1.TableColumnDefinition{Name: "Nominated Node", Type: "string", Description: corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"]}),
		wide(metav1.TableColumnDefinition{Name: "Readiness Gates", Type: "string", Description: corev1.PodSpec{}.SwaggerDoc()["readinessGates"]}),
	}
	nodeColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "The status of the node"},
		{Name: "Roles", Type: "string", Description: "The roles of the node"},
		ageColumn,
		{Name: "Version", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kubeletVersion"]},
		wide(metav1.TableColumnDefinition{Name: "Internal-IP", Type: "string", Description: corev1.NodeStatus{}.SwaggerDoc()["addresses"]}),
		wide(metav1.TableColumnDefinition{Name: "External-IP", Type: "string", Description: corev1.NodeStatus{}.SwaggerDoc()["addresses"]}),
		wide(metav1.TableColumnDefinition{Name: "OS-Image", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["osImage"]}),
		wide(metav1.TableColumnDefinition{Name: "Kernel-Version", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kernelVersion"]}),
		wide(metav1.TableColumnDefinition{Name: "Container-Runtime", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["containerRuntimeVersion"]}),
	}
	namespaceColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "The status of the namespace"},
		ageColumn,
	}
	eventColumns = []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string", Description: corev1.Event{}.SwaggerDoc()["lastTimestamp"]},
		{Name: "Type", Type: "string", Description: corev1.Event{}.SwaggerDoc()["type"]},
		{Name: "Reason", Type: "string", Description: corev1.Event{}.SwaggerDoc()["reason"]},
		{Name: "Object", Type: "string", Description: corev1.Event{}.SwaggerDoc()["involvedObject"]},
		wide(metav1.TableColumnDefinition{Name: "Subobject", Type: "string", Description: corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]}),
		wide(metav1.TableColumnDefinition{Name: "Source", Type: "string", Description: corev1.Event{}.SwaggerDoc()["source"]}),
		{Name: "Message", Type: "string", Description: corev1.Event{}.SwaggerDoc()["message"]},
		wide(metav1.TableColumnDefinition{Name: "First Seen", Type: "string", Description: corev1.Event{}.SwaggerDoc()["firstTimestamp"]}),
		wide(metav1.TableColumnDefinition{Name: "Count", Type: "string", Description: corev1.Event{}.SwaggerDoc()["count"]}),
		wide(metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: nameDoc}),
	}
	configMapColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Data", Type: "string", Description: corev1.ConfigMap{}.SwaggerDoc()["data"]},
		ageColumn,
	}
	secretColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Type", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["type"]},
		{Name: "Data", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["data"]},
		ageColumn,
	}
	leaseColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Holder", Type: "string", Description: coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]},
		ageColumn,
	}
	defaultColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Created At", Type: "date", Description: createdDoc},
	}
)

// Columns are the column definitions of a resource's table.
func Columns(info resource.Info) []metav1.TableColumnDefinition {
	var cols []metav1.TableColumnDefinition
	switch key(info) {
	case "/Pod":
		cols = podColumns
	case "/Node":
		cols = nodeColumns
	case "/Namespace":
		cols = namespaceColumns
	case "/Event", "events.k8s.io/Event":
		cols = eventColumns
	case "coordination.k8s.io/Lease":
		cols = leaseColumns
	case "/ConfigMap":
		cols = configMapColumns
	case "/Secret":
		cols = secretColumns
	default:
		cols = defaultColumns
	}
	return append([]metav1.TableColumnDefinition(nil), cols...)
}

func key(info resource.Info) string { return info.Group + "/" + info.Kind }

// ForList prints objs (pointers to the typed objects of info's kind) as a
// Table with one row each. The caller sets the list metadata
// (resourceVersion, continue) on the result.
func ForList(info resource.Info, objs []runtime.Object, include metav1.IncludeObjectPolicy, now time.Time) (*metav1.Table, error) {
	t := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ColumnDefinitions: Columns(info),
		Rows:              []metav1.TableRow{},
	}
	for _, o := range objs {
		row, err := Row(info, o, include, now)
		if err != nil {
			return nil, err
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// ForObject prints one object as a Table of one row, as for `kubectl get
// pod NAME` and each watch event. Its ResourceVersion is the object's.
func ForObject(info resource.Info, obj runtime.Object, include metav1.IncludeObjectPolicy, now time.Time) (*metav1.Table, error) {
	t, err := ForList(info, []runtime.Object{obj}, include, now)
	if err != nil {
		return nil, err
	}
	if m, err := meta.Accessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
	}
	return t, nil
}

// Row prints one object.
func Row(info resource.Info, obj runtime.Object, include metav1.IncludeObjectPolicy, now time.Time) (metav1.TableRow, error) {
	var row metav1.TableRow
	var err error
	wrong := func() (metav1.TableRow, error) {
		return row, fmt.Errorf("tables: %T is not a %s %s", obj, info.GroupVersion(), info.Kind)
	}
	switch key(info) {
	case "/Pod":
		o, ok := obj.(*corev1.Pod)
		if !ok {
			return wrong()
		}
		row = podRow(o, now)
	case "/Node":
		o, ok := obj.(*corev1.Node)
		if !ok {
			return wrong()
		}
		row = nodeRow(o, now)
	case "/Namespace":
		o, ok := obj.(*corev1.Namespace)
		if !ok {
			return wrong()
		}
		row.Cells = []any{o.Name, string(o.Status.Phase), printers.Age(o.CreationTimestamp.Time, now)}
	case "/Event":
		o, ok := obj.(*corev1.Event)
		if !ok {
			return wrong()
		}
		row.Cells = eventCells(o, now)
	case "events.k8s.io/Event":
		o, ok := obj.(*eventsv1.Event)
		if !ok {
			return wrong()
		}
		row.Cells = eventCells(CoreEvent(o), now)
	case "coordination.k8s.io/Lease":
		o, ok := obj.(*coordinationv1.Lease)
		if !ok {
			return wrong()
		}
		holder := ""
		if o.Spec.HolderIdentity != nil {
			holder = *o.Spec.HolderIdentity
		}
		row.Cells = []any{o.Name, holder, printers.Age(o.CreationTimestamp.Time, now)}
	case "/ConfigMap":
		o, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return wrong()
		}
		row.Cells = []any{o.Name, int64(len(o.Data) + len(o.BinaryData)), printers.Age(o.CreationTimestamp.Time, now)}
	case "/Secret":
		o, ok := obj.(*corev1.Secret)
		if !ok {
			return wrong()
		}
		row.Cells = []any{o.Name, string(o.Type), int64(len(o.Data)), printers.Age(o.CreationTimestamp.Time, now)}
	default:
		m, err := meta.Accessor(obj)
		if err != nil {
			return row, fmt.Errorf("tables: cannot print %T: %w", obj, err)
		}
		created := m.GetCreationTimestamp()
		row.Cells = []any{m.GetName(), created.UTC().Format(time.RFC3339)}
	}
	row.Object, err = embed(info, obj, include)
	return row, err
}

// embed is the row's object: nothing, its metadata as a
// PartialObjectMetadata, or the whole object with apiVersion and kind set.
func embed(info resource.Info, obj runtime.Object, include metav1.IncludeObjectPolicy) (runtime.RawExtension, error) {
	switch include {
	case metav1.IncludeNone:
		return runtime.RawExtension{}, nil
	case metav1.IncludeObject:
		c := obj.DeepCopyObject()
		c.GetObjectKind().SetGroupVersionKind(info.GVK())
		raw, err := json.Marshal(c)
		if err != nil {
			return runtime.RawExtension{}, err
		}
		return runtime.RawExtension{Raw: raw}, nil
	default:
		m, err := meta.Accessor(obj)
		if err != nil {
			return runtime.RawExtension{}, err
		}
		p := &metav1.PartialObjectMetadata{
			TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
		}
		if om, ok := m.(*metav1.ObjectMeta); ok {
			p.ObjectMeta = *om.DeepCopy()
		} else {
			p.ObjectMeta = metav1.ObjectMeta{
				Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
				ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
				Labels: m.GetLabels(), Annotations: m.GetAnnotations(),
			}
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return runtime.RawExtension{}, err
		}
		return runtime.RawExtension{Raw: raw}, nil
	}
}

var (
	completed = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodSucceeded), Message: "The pod has completed successfully."}}
	failed    = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodFailed), Message: "The pod failed."}}
)

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func podRow(pod *corev1.Pod, now time.Time) metav1.TableRow {
	var row metav1.TableRow
	ready, total := printers.ReadyCount(pod)
	count, last := printers.Restarts(pod)
	restarts := strconv.Itoa(count)
	if last != nil {
		restarts = fmt.Sprintf("%d (%s ago)", count, printers.Age(*last, now))
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		row.Conditions = completed
	case corev1.PodFailed:
		row.Conditions = failed
	}
	ip := ""
	if len(pod.Status.PodIPs) > 0 {
		ip = pod.Status.PodIPs[0].IP
	} else {
		ip = pod.Status.PodIP
	}
	gates := "<none>"
	if n := len(pod.Spec.ReadinessGates); n > 0 {
		trueGates := 0
		for _, g := range pod.Spec.ReadinessGates {
			for _, c := range pod.Status.Conditions {
				if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
					trueGates++
					break
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", trueGates, n)
	}
	row.Cells = []any{
		pod.Name,
		fmt.Sprintf("%d/%d", ready, total),
		printers.PodReason(pod),
		restarts,
		printers.Age(pod.CreationTimestamp.Time, now),
		orNone(ip),
		orNone(pod.Spec.NodeName),
		orNone(pod.Status.NominatedNodeName),
		gates,
	}
	return row
}

// nodeRoles are the roles kubectl shows: node-role.kubernetes.io/<role>
// labels and the kubernetes.io/role label's value.
func nodeRoles(node *corev1.Node) string {
	set := map[string]bool{}
	for k, v := range node.Labels {
		switch {
		case strings.HasPrefix(k, wellknown.LabelNodeRolePrefix):
			if role := strings.TrimPrefix(k, wellknown.LabelNodeRolePrefix); role != "" {
				set[role] = true
			}
		case k == wellknown.LabelNodeRole && v != "":
			set[v] = true
		}
	}
	if len(set) == 0 {
		return "<none>"
	}
	roles := make([]string, 0, len(set))
	for r := range set {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return strings.Join(roles, ",")
}

func nodeAddress(node *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range node.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func nodeRow(node *corev1.Node, now time.Time) metav1.TableRow {
	var status []string
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			status = append(status, "Ready")
		} else {
			status = append(status, "NotReady")
		}
		break
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if node.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	info := node.Status.NodeInfo
	return metav1.TableRow{Cells: []any{
		node.Name,
		strings.Join(status, ","),
		nodeRoles(node),
		printers.Age(node.CreationTimestamp.Time, now),
		info.KubeletVersion,
		nodeAddress(node, corev1.NodeInternalIP),
		nodeAddress(node, corev1.NodeExternalIP),
		orUnknown(info.OSImage),
		orUnknown(info.KernelVersion),
		orUnknown(info.ContainerRuntimeVersion),
	}}
}

// CoreEvent maps an events.k8s.io/v1 Event onto core/v1 fields, as
// kube-apiserver does (both are stored as one internal type and printed
// alike).
func CoreEvent(e *eventsv1.Event) *corev1.Event {
	c := &corev1.Event{
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              e.DeprecatedSource,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Action:              e.Action,
		Related:             e.Related,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		c.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return c
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func eventCells(e *corev1.Event, now time.Time) []any {
	first := printers.Age(e.FirstTimestamp.Time, now)
	if e.FirstTimestamp.IsZero() {
		first = printers.Age(e.EventTime.Time, now)
	}
	last := printers.Age(e.LastTimestamp.Time, now)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil {
		last = printers.Age(e.Series.LastObservedTime.Time, now)
		count = e.Series.Count
	} else if count == 0 {
		count = 1 // singleton events of the new API carry no count
	}
	target := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		target += "/" + e.InvolvedObject.Name
	}
	source := firstNonEmpty(e.Source.Component, e.ReportingController)
	if inst := firstNonEmpty(e.Source.Host, e.ReportingInstance); inst != "" {
		source += ", " + inst
	}
	return []any{
		last, e.Type, e.Reason, target, e.InvolvedObject.FieldPath, source,
		strings.TrimSpace(e.Message), first, int64(count), e.Name,
	}
}
