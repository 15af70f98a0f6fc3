package request

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	restclientwatch "k8s.io/client-go/rest/watch"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
)

func TestWantsProtobuf(t *testing.T) {
	for _, tc := range []struct {
		accept string
		want   bool
	}{
		{"application/vnd.kubernetes.protobuf, */*", true}, // client-go with a protobuf content type
		{"application/vnd.kubernetes.protobuf,application/json", true},
		{"application/json, */*", false}, // kubectl
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json", false},
		{"", false},
		{"*/*", false},
		{"application/vnd.kubernetes.protobuf;q=0, application/json", false},
		{"application/json, application/vnd.kubernetes.protobuf", false}, // JSON ranked first
		{"text/plain, application/vnd.kubernetes.protobuf", true},
	} {
		r := httptest.NewRequest("GET", "/api/v1/pods", nil)
		r.Header.Set("Accept", tc.accept)
		if got := WantsProtobuf(r); got != tc.want {
			t.Errorf("Accept %q: protobuf %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func testPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", ResourceVersion: "42", Labels: map[string]string{"tier": "control-plane"}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "etcd", Image: "etcd:3.5"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7"},
	}
}

// The bodies decode with apimachinery's protobuf serializer (what every
// client-go client uses) into the objects encoded.
func TestProtoBodiesDecode(t *testing.T) {
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	pod := testPod("etcd-n1")
	body, err := EncodeProto(pod)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := codec.Decode(body, nil, nil)
	if err != nil {
		t.Fatalf("decoding a pod: %v", err)
	}
	want := pod.DeepCopy()
	want.TypeMeta = metav1.TypeMeta{}
	if gp, ok := got.(*corev1.Pod); !ok || !equality.Semantic.DeepEqual(gp.Spec, want.Spec) || gp.Name != want.Name || gp.ResourceVersion != "42" || gp.Status.PodIP != "10.0.0.7" {
		t.Errorf("decoded %#v", got)
	}

	var items [][]byte
	for _, n := range []string{"a", "b", "c"} {
		b, err := ProtoBytes(testPod(n))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, b)
	}
	rec := httptest.NewRecorder()
	WriteProtoList(rec, apitest.KindOf(t, "", "pods"), metav1.ListMeta{ResourceVersion: "99", Continue: "next"}, items)
	if ct := rec.Header().Get("Content-Type"); ct != ProtobufType {
		t.Errorf("list Content-Type %q", ct)
	}
	obj, _, err := codec.Decode(rec.Body.Bytes(), nil, nil)
	if err != nil {
		t.Fatalf("decoding a list: %v", err)
	}
	l, ok := obj.(*corev1.PodList)
	if !ok || l.ResourceVersion != "99" || l.Continue != "next" || len(l.Items) != 3 || l.Items[2].Name != "c" || l.Items[1].Spec.NodeName != "n1" {
		t.Errorf("decoded list %#v", obj)
	}
}

// Watch frames read back with client-go's own watch decoder, as a protobuf
// informer reads them.
func TestWatchFramesDecode(t *testing.T) {
	var stream bytes.Buffer
	for _, ev := range []struct {
		typ string
		obj runtime.Object
	}{
		{"ADDED", testPod("a")},
		{"MODIFIED", testPod("b")},
		{"BOOKMARK", &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{ResourceVersion: "100"}}},
		{"ERROR", &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonGone, Message: "too old"}},
	} {
		obj, err := EncodeProto(ev.obj)
		if err != nil {
			t.Fatal(err)
		}
		f, err := WatchFrame(ev.typ, obj)
		if err != nil {
			t.Fatal(err)
		}
		stream.Write(f)
	}
	raw := protobuf.NewRawSerializer(scheme.Scheme, scheme.Scheme)
	framed := protobuf.LengthDelimitedFramer.NewFrameReader(io.NopCloser(&stream))
	dec := restclientwatch.NewDecoder(streaming.NewDecoder(framed, raw), protobuf.NewSerializer(scheme.Scheme, scheme.Scheme))
	var got []string
	for {
		typ, obj, err := dec.Decode()
		if err != nil {
			break
		}
		switch o := obj.(type) {
		case *corev1.Pod:
			got = append(got, string(typ)+" "+o.Name+"@"+o.ResourceVersion)
		case *metav1.Status:
			got = append(got, string(typ)+" "+string(o.Reason))
		}
	}
	want := []string{"ADDED a@42", "MODIFIED b@42", "BOOKMARK @100", string(watch.Error) + " Gone"}
	if len(got) != len(want) {
		t.Fatalf("decoded %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// An object sent in protobuf (the kubelet's, client-go's) reads as the same
// object sent in JSON; one of another kind is refused.
func TestReadObjectProtobuf(t *testing.T) {
	var podKind *kinds.Kind
	for _, k := range kinds.All() {
		if k.Info.Resource == "pods" && k.Info.Group == "" {
			podKind = k
		}
	}
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	read := func(ct string, body []byte) (kinds.Object, error) {
		r := httptest.NewRequest("PUT", "/api/v1/namespaces/kube-system/pods/etcd-n1", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		o, _, _, _, err := ReadObject(r, &Request{Kind: podKind, Verb: "update", Query: url.Values{}})
		return o, err
	}
	pod := testPod("etcd-n1")
	var pb, js bytes.Buffer
	if err := codec.Encode(pod, &pb); err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(&js).Encode(pod); err != nil {
		t.Fatal(err)
	}
	fromProto, err := read(ProtobufType, pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := read("application/json", js.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(fromProto, fromJSON) {
		t.Errorf("from protobuf %+v\nfrom JSON %+v", fromProto, fromJSON)
	}

	pb.Reset()
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "etcd-n1"}}
	if err := codec.Encode(cm, &pb); err != nil {
		t.Fatal(err)
	}
	if _, err := read(ProtobufType, pb.Bytes()); err == nil || !strings.Contains(err.Error(), "the kind in the data (ConfigMap) does not match the expected kind (Pod)") {
		t.Errorf("a ConfigMap as a Pod: %v", err)
	}
	if _, err := read(ProtobufType, []byte("k8s\x00nope")); err == nil || !strings.Contains(err.Error(), "the protobuf request body is not a valid Pod") {
		t.Errorf("a bad body: %v", err)
	}
}
