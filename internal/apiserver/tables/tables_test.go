package tables

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func info(t *testing.T, group, res string) resource.Info {
	t.Helper()
	in, ok := resource.Lookup(resource.Served(), group, "v1", res)
	if !ok {
		t.Fatalf("%s %s not served", group, res)
	}
	return in
}

func TestWantsTable(t *testing.T) {
	for accept, want := range map[string]string{
		"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json": "v1",
		"application/json;as=Table;v=v1beta1;g=meta.k8s.io":                                                               "v1beta1",
		"application/json": "",
		"application/json, application/json;as=Table;v=v1;g=meta.k8s.io":                                               "",
		"application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io": "v1",
		"application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io":                                             "",
		"": "",
	} {
		ok, v := WantsTable(accept)
		if ok != (want != "") || v != want {
			t.Errorf("WantsTable(%q) = %v %q, want %q", accept, ok, v, want)
		}
	}
}

// cells renders a table's rows for comparison.
func cells(tbl *metav1.Table) []string {
	var out []string
	for _, r := range tbl.Rows {
		var s []string
		for _, c := range r.Cells {
			s = append(s, fmt.Sprint(c))
		}
		out = append(out, strings.Join(s, " | "))
	}
	return out
}

func headers(tbl *metav1.Table) string {
	var s []string
	for _, c := range tbl.ColumnDefinitions {
		h := c.Name
		if c.Priority > 0 {
			h += "*"
		}
		s = append(s, h)
	}
	return strings.Join(s, " ")
}

func check(t *testing.T, tbl *metav1.Table, wantHeaders string, wantRows ...string) {
	t.Helper()
	if got := headers(tbl); got != wantHeaders {
		t.Errorf("columns:\n got %s\nwant %s", got, wantHeaders)
	}
	got := cells(tbl)
	if !reflect.DeepEqual(got, wantRows) {
		t.Errorf("rows:\n got %q\nwant %q", got, wantRows)
	}
	for i, r := range tbl.Rows {
		if len(r.Cells) != len(tbl.ColumnDefinitions) {
			t.Errorf("row %d has %d cells for %d columns", i, len(r.Cells), len(tbl.ColumnDefinitions))
		}
	}
}

func TestPods(t *testing.T) {
	sidecar := corev1.ContainerRestartPolicyAlways
	started := true
	pods := []runtime.Object{
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: ago(90 * time.Minute)},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "a"}, {Name: "b"}},
				ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "x"}, {ConditionType: "y"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}},
				NominatedNodeName: "n2",
				Conditions:        []corev1.PodCondition{{Type: "x", Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{
					{Name: "a", Ready: true, RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
						LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: ago(3 * time.Minute)}}},
					{Name: "b", RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}},
				}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "init", CreationTimestamp: ago(10 * time.Second)},
			Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i1"}, {Name: "side", RestartPolicy: &sidecar}},
				Containers: []corev1.Container{{Name: "main"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
				{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "side", Started: &started, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}, ContainerStatuses: []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "done", CreationTimestamp: ago(49 * time.Hour)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
			Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{
				{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bye", DeletionTimestamp: &metav1.Time{Time: now}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9"},
		},
	}
	tbl, err := ForList(info(t, "", "pods"), pods, metav1.IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tbl, "Name Ready Status Restarts Age IP* Node* Nominated Node* Readiness Gates*",
		"web | 1/2 | ImagePullBackOff | 3 (3m ago) | 90m | 10.0.0.1 | n1 | n2 | 1/2",
		"init | 0/2 | PodInitializing | 0 | 10s | <none> | <none> | <none> | <none>",
		"done | 0/1 | Completed | 0 | 2d1h | <none> | <none> | <none> | <none>",
		"bye | 0/1 | Terminating | 0 | <unknown> | 10.0.0.9 | <none> | <none> | <none>",
	)
	if c := tbl.Rows[2].Conditions; len(c) != 1 || c[0].Type != metav1.RowCompleted {
		t.Errorf("succeeded pod conditions %v", c)
	}
	if tbl.Rows[0].Conditions != nil {
		t.Errorf("running pod conditions %v", tbl.Rows[0].Conditions)
	}
	if tbl.ColumnDefinitions[0].Format != "name" || tbl.ColumnDefinitions[0].Description == "" || tbl.ColumnDefinitions[5].Description == "" {
		t.Errorf("column definitions %+v", tbl.ColumnDefinitions[:6])
	}
}

func TestNodesNamespacesLeases(t *testing.T) {
	nodes := []runtime.Object{
		&corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "a", CreationTimestamp: ago(5 * 24 * time.Hour),
				Labels: map[string]string{"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}},
			Spec: corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionUnknown}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "a"}, {Type: corev1.NodeExternalIP, Address: "1.2.3.4"}, {Type: corev1.NodeInternalIP, Address: "10.1.1.1"}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.32.0", KernelVersion: "6.1"},
			},
		},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b", CreationTimestamp: ago(time.Minute)}},
	}
	tbl, err := ForList(info(t, "", "nodes"), nodes, metav1.IncludeNone, now)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tbl, "Name Status Roles Age Version Internal-IP* External-IP* OS-Image* Kernel-Version* Container-Runtime*",
		"a | NotReady,SchedulingDisabled | control-plane,edge,worker | 5d | v1.32.0 | 10.1.1.1 | 1.2.3.4 | <unknown> | 6.1 | <unknown>",
		"b | Unknown | <none> | 60s |  | <none> | <none> | <unknown> | <unknown> | <unknown>",
	)
	if tbl.Rows[0].Object.Raw != nil || tbl.Rows[0].Object.Object != nil {
		t.Errorf("includeObject=None embedded %s", tbl.Rows[0].Object.Raw)
	}

	ns := []runtime.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", CreationTimestamp: ago(time.Hour)},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}}
	tbl, err = ForList(info(t, "", "namespaces"), ns, metav1.IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tbl, "Name Status Age", "default | Active | 60m")

	holder := "node1"
	leases := []runtime.Object{
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node1", CreationTimestamp: ago(2 * time.Minute)}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "free", CreationTimestamp: ago(2 * time.Minute)}},
	}
	tbl, err = ForList(info(t, "coordination.k8s.io", "leases"), leases, metav1.IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tbl, "Name Holder Age", "node1 | node1 | 2m", "free |  | 2m")
}

func TestEvents(t *testing.T) {
	core := []runtime.Object{
		&corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "p.1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", FieldPath: "spec.containers{c}"},
			Reason:         "BackOff", Message: " Back-off restarting \n", Type: corev1.EventTypeWarning,
			Source:         corev1.EventSource{Component: "kubelet", Host: "n1"},
			FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(time.Minute), Count: 7,
		},
		&corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "n.1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Node"},
			Reason:         "Starting", Type: corev1.EventTypeNormal,
			EventTime:           metav1.NewMicroTime(now.Add(-30 * time.Second)),
			ReportingController: "ballast", ReportingInstance: "n1",
		},
	}
	tbl, err := ForList(info(t, "", "events"), core, metav1.IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	const cols = "Last Seen Type Reason Object Subobject* Source* Message First Seen* Count* Name*"
	check(t, tbl, cols,
		"60s | Warning | BackOff | pod/p | spec.containers{c} | kubelet, n1 | Back-off restarting | 10m | 7 | p.1",
		"30s | Normal | Starting | node |  | ballast, n1 |  | 30s | 1 | n.1",
	)

	ev := []runtime.Object{&eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "e"}, EventTime: metav1.NewMicroTime(now.Add(-time.Hour)),
		Series:              &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(now.Add(-2 * time.Second))},
		ReportingController: "ballast", Reason: "Pulled", Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p"},
		Note: "pulled", Type: "Normal",
	}}
	tbl, err = ForList(info(t, "events.k8s.io", "events"), ev, metav1.IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tbl, cols, "2s | Normal | Pulled | pod/p |  | ballast | pulled | 60m | 3 | e")
}

func TestIncludeObject(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u", ResourceVersion: "42",
		Labels: map[string]string{"a": "b"}}, Spec: corev1.PodSpec{NodeName: "n1"}}
	in := info(t, "", "pods")

	tbl, err := ForObject(in, pod, metav1.IncludeMetadata, now)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.ResourceVersion != "42" || tbl.Kind != "Table" || tbl.APIVersion != "meta.k8s.io/v1" {
		t.Errorf("table meta %+v %+v", tbl.TypeMeta, tbl.ListMeta)
	}
	var partial metav1.PartialObjectMetadata
	if err := json.Unmarshal(tbl.Rows[0].Object.Raw, &partial); err != nil {
		t.Fatal(err)
	}
	if partial.APIVersion != "meta.k8s.io/v1" || partial.Kind != "PartialObjectMetadata" || partial.Name != "p" ||
		partial.Labels["a"] != "b" || partial.UID != "u" {
		t.Errorf("partial %+v", partial)
	}
	if strings.Contains(string(tbl.Rows[0].Object.Raw), "nodeName") {
		t.Errorf("metadata row carries the spec: %s", tbl.Rows[0].Object.Raw)
	}

	tbl, err = ForObject(in, pod, metav1.IncludeObject, now)
	if err != nil {
		t.Fatal(err)
	}
	var full corev1.Pod
	if err := json.Unmarshal(tbl.Rows[0].Object.Raw, &full); err != nil {
		t.Fatal(err)
	}
	if full.APIVersion != "v1" || full.Kind != "Pod" || full.Spec.NodeName != "n1" {
		t.Errorf("full object %+v", full)
	}
	if pod.Kind != "" {
		t.Errorf("ForObject modified its argument")
	}

	// The whole table encodes as kube-apiserver's does.
	b, err := json.Marshal(tbl)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind":"Table"`, `"apiVersion":"meta.k8s.io/v1"`, `"columnDefinitions":[`, `"priority":1`, `"object":{"kind":"Pod","apiVersion":"v1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("table JSON lacks %s: %s", want, b)
		}
	}

	if _, err := ParseIncludeObject("Everything"); err == nil {
		t.Errorf("ParseIncludeObject accepted a bad value")
	}
	if p, _ := ParseIncludeObject(""); p != metav1.IncludeMetadata {
		t.Errorf("default includeObject %q", p)
	}
}

func TestDefaultColumns(t *testing.T) {
	in := resource.Info{Group: "example.com", Version: "v1", Kind: "Thing"}
	obj := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "x", CreationTimestamp: metav1.NewTime(now)}}
	tbl, err := ForList(in, []runtime.Object{obj}, metav1.IncludeNone, now)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tbl, "Name Created At", "x | 2026-01-02T03:04:05Z")
	if tbl.ColumnDefinitions[1].Type != "date" {
		t.Errorf("default columns %+v", tbl.ColumnDefinitions)
	}
	if _, err := ForList(info(t, "", "pods"), []runtime.Object{obj}, metav1.IncludeNone, now); err == nil {
		t.Errorf("a Lease printed as a pod")
	}
}
