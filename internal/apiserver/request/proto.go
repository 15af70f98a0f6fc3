package request

import (
	"encoding/binary"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
)

// Responses in Kubernetes protobuf, for the clients that ask for it first
// (the kubelet, controllers and informers built with client-go's protobuf
// content type): decoding protobuf costs such a client a fraction of what
// JSON does, which is what bounds many informers on one machine.
// Objects, lists and watch events are encoded as kube-apiserver encodes
// them (k8s.io/apimachinery's protobuf serializer: the "k8s\x00" magic and
// a runtime.Unknown envelope naming apiVersion and kind; watch events as
// metav1.WatchEvent, each framed by its length). Errors and Tables stay
// JSON, as clients read them by their Content-Type.

// WatchProtobufType is the Content-Type of a protobuf watch stream.
const WatchProtobufType = ProtobufType + ";stream=watch"

// WantsProtobuf tells whether the client ranks protobuf above JSON in its
// Accept header (client-go with a protobuf content type sends
// "application/vnd.kubernetes.protobuf, */*").
func WantsProtobuf(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case ProtobufType:
			return true
		case "application/json", "application/*", "*/*":
			return false
		}
	}
	return false
}

// marshaler is what every k8s.io/api type is: its protobuf encoding.
type marshaler interface{ Marshal() ([]byte, error) }

// ProtoBytes is o's protobuf message, without magic or envelope.
func ProtoBytes(o runtime.Object) ([]byte, error) {
	m, ok := o.(marshaler)
	if !ok {
		return nil, fmt.Errorf("%T has no protobuf encoding", o)
	}
	return m.Marshal()
}

// Envelope wraps the protobuf message msg of kind (apiVersion, kind) as
// the protobuf serializer does: the magic, then a runtime.Unknown.
func Envelope(apiVersion, kind string, msg []byte) ([]byte, error) {
	u := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: apiVersion, Kind: kind}, Raw: msg}
	b, err := u.Marshal()
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(protobufMagic)+len(b)), protobufMagic...), b...), nil
}

// ProtoList is the protobuf message of a list: every Kubernetes list is
// metadata (field 1) then its items (field 2, repeated), each item given
// as its own message (ProtoBytes).
func ProtoList(lm metav1.ListMeta, items [][]byte) ([]byte, error) {
	meta, err := lm.Marshal()
	if err != nil {
		return nil, err
	}
	size := len(meta) + 8
	for _, it := range items {
		size += len(it) + 8
	}
	b := make([]byte, 0, size)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, meta)
	for _, it := range items {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, it)
	}
	return b, nil
}

// WatchFrame is one event of a protobuf watch stream: a metav1.WatchEvent
// whose object is the enveloped obj, preceded by its length (4 bytes, big
// endian), as client-go's length-delimited framer reads it.
func WatchFrame(eventType string, obj []byte) ([]byte, error) {
	ev := metav1.WatchEvent{Type: eventType, Object: runtime.RawExtension{Raw: obj}}
	b, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b))), b...), nil
}

// EncodeProto is o as an enveloped protobuf body, named by its own
// apiVersion and kind (which must be set).
func EncodeProto(o runtime.Object) ([]byte, error) {
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" {
		return nil, fmt.Errorf("%T has no kind set", o)
	}
	msg, err := ProtoBytes(o)
	if err != nil {
		return nil, err
	}
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return Envelope(apiVersion, kind, msg)
}

// writeProto answers with an enveloped protobuf body.
func writeProto(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", ProtobufType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// WriteProtoList answers with a list of kind k whose items are already
// protobuf messages.
func WriteProtoList(w http.ResponseWriter, k *kinds.Kind, lm metav1.ListMeta, items [][]byte) {
	msg, err := ProtoList(lm, items)
	var body []byte
	if err == nil {
		body, err = Envelope(k.Info.GroupVersion(), k.Info.ListKind, msg)
	}
	if err != nil {
		WriteError(w, InternalError(fmt.Errorf("encoding the list: %w", err)))
		return
	}
	writeProto(w, http.StatusOK, body)
}
