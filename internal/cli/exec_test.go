package cli

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestTranslatePorts(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
		{Name: "side", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}},
	}}}
	got, err := translatePorts(pod, []string{"8080", "9000:80", ":81", "http", "7000:metrics", ":http"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"8080", "9000:80", ":81", "8080:8080", "7000:9090", ":8080"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := translatePorts(pod, []string{"grpc"}); err == nil {
		t.Error("an unknown port name must be refused")
	}
}

func TestExitCode(t *testing.T) {
	if c := ExitCode(fmt.Errorf("wrapped: %w", exitCodeError{code: 3})); c != 3 {
		t.Errorf("exit code %d, want 3", c)
	}
	if c := ExitCode(fmt.Errorf("other")); c != 1 {
		t.Errorf("exit code %d, want 1", c)
	}
}
