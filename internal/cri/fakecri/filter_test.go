package fakecri

import (
	"testing"

	"github.com/containerd/containerd/api/types"
)

func TestEventFilters(t *testing.T) {
	exit := &types.Envelope{Topic: "/tasks/exit", Namespace: "k8s.io"}
	start := &types.Envelope{Topic: "/tasks/start", Namespace: "k8s.io"}
	other := &types.Envelope{Topic: "/tasks/exit", Namespace: "moby"}
	for _, tc := range []struct {
		filters       []string
		exit, start   bool
		otherNS       bool
		wantParseFail bool
	}{
		{filters: nil, exit: true, start: true, otherNS: true},
		{filters: []string{`topic=="/tasks/exit",namespace=="k8s.io"`}, exit: true},
		{filters: []string{`topic=="/tasks/exit"`}, exit: true, otherNS: true},
		{filters: []string{`topic==/tasks/start`}, start: true},
		{filters: []string{`topic=="/tasks/exit"`, `topic=="/tasks/start"`}, exit: true, start: true, otherNS: true},
		{filters: []string{`namespace!=k8s.io`}, otherNS: true},
		{filters: []string{`topic~="^/tasks/"`, `namespace`}, exit: true, start: true, otherNS: true},
		{filters: []string{`image.name=="x"`}},
		{filters: []string{`topic="/tasks/exit"`}, wantParseFail: true},
		{filters: []string{`topic=="/tasks/exit`}, wantParseFail: true},
		{filters: []string{`topic=="a",`}, wantParseFail: true},
		{filters: []string{`topic~="("`}, wantParseFail: true},
	} {
		fs, err := parseFilters(tc.filters)
		if (err != nil) != tc.wantParseFail {
			t.Errorf("parseFilters(%q): err = %v", tc.filters, err)
			continue
		}
		if err != nil {
			continue
		}
		if got := [3]bool{matchAny(fs, exit), matchAny(fs, start), matchAny(fs, other)}; got != [3]bool{tc.exit, tc.start, tc.otherNS} {
			t.Errorf("%q matches (exit, start, other namespace) = %v, want %v", tc.filters, got, [3]bool{tc.exit, tc.start, tc.otherNS})
		}
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                 "docker.io/library/busybox:latest",
		"busybox:1.36":            "docker.io/library/busybox:1.36",
		"user/app":                "docker.io/user/app:latest",
		"registry.example/app:v1": "registry.example/app:v1",
		"localhost:5000/app":      "localhost:5000/app:latest",
		"localhost/app:v2":        "localhost/app:v2",
		"quay.io/a/b@sha256:abc":  "quay.io/a/b@sha256:abc",
		"sha256:0123":             "sha256:0123",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}
