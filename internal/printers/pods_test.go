package printers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

var now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func running(name string, ready bool, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: ready, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func waiting(name, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func terminated(name, reason string, code, signal int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code, Signal: signal}}}
}

func pod(phase corev1.PodPhase, inits []string, containers []string, initSt, st []corev1.ContainerStatus) *corev1.Pod {
	p := &corev1.Pod{Status: corev1.PodStatus{Phase: phase, InitContainerStatuses: initSt, ContainerStatuses: st}}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n})
	}
	return p
}

func TestPodReason(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	started := true
	withSidecar := pod(corev1.PodRunning, []string{"side"}, []string{"app"},
		[]corev1.ContainerStatus{func() corev1.ContainerStatus { s := running("side", true, 1); s.Started = &started; return s }()},
		[]corev1.ContainerStatus{running("app", true, 0)})
	withSidecar.Spec.InitContainers[0].RestartPolicy = &always

	deleting := pod(corev1.PodRunning, nil, []string{"a"}, nil, []corev1.ContainerStatus{running("a", true, 0)})
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	deletedDone := pod(corev1.PodSucceeded, nil, []string{"a"}, nil, []corev1.ContainerStatus{terminated("a", "Completed", 0, 0)})
	deletedDone.DeletionTimestamp = &metav1.Time{Time: now}
	lost := pod(corev1.PodRunning, nil, []string{"a"}, nil, nil)
	lost.DeletionTimestamp = &metav1.Time{Time: now}
	lost.Status.Reason = "NodeLost"

	completedAndRunning := pod(corev1.PodRunning, nil, []string{"a", "b"}, nil,
		[]corev1.ContainerStatus{terminated("a", "Completed", 0, 0), running("b", true, 0)})
	completedAndRunningReady := completedAndRunning.DeepCopy()
	completedAndRunningReady.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}

	evicted := pod(corev1.PodFailed, nil, []string{"a"}, nil, nil)
	evicted.Status.Reason = "Evicted"

	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		want       string
		ready, tot int
	}{
		{"running", pod(corev1.PodRunning, nil, []string{"a", "b"}, nil, []corev1.ContainerStatus{running("a", true, 0), running("b", false, 0)}), "Running", 1, 2},
		{"pending no status", pod(corev1.PodPending, nil, []string{"a"}, nil, nil), "Pending", 0, 1},
		{"creating", pod(corev1.PodPending, nil, []string{"a"}, nil, []corev1.ContainerStatus{waiting("a", "ContainerCreating")}), "ContainerCreating", 0, 1},
		{"crashloop", pod(corev1.PodRunning, nil, []string{"a"}, nil, []corev1.ContainerStatus{waiting("a", "CrashLoopBackOff")}), "CrashLoopBackOff", 0, 1},
		{"image pull", pod(corev1.PodPending, nil, []string{"a"}, nil, []corev1.ContainerStatus{waiting("a", "ErrImagePull")}), "ErrImagePull", 0, 1},
		{"image backoff", pod(corev1.PodPending, nil, []string{"a"}, nil, []corev1.ContainerStatus{waiting("a", "ImagePullBackOff")}), "ImagePullBackOff", 0, 1},
		{"first container wins", pod(corev1.PodPending, nil, []string{"a", "b"}, nil, []corev1.ContainerStatus{waiting("a", "ErrImagePull"), waiting("b", "CrashLoopBackOff")}), "ErrImagePull", 0, 2},
		{"completed", pod(corev1.PodSucceeded, nil, []string{"a"}, nil, []corev1.ContainerStatus{terminated("a", "Completed", 0, 0)}), "Completed", 0, 1},
		{"error", pod(corev1.PodFailed, nil, []string{"a"}, nil, []corev1.ContainerStatus{terminated("a", "Error", 1, 0)}), "Error", 0, 1},
		{"oom", pod(corev1.PodRunning, nil, []string{"a"}, nil, []corev1.ContainerStatus{terminated("a", "OOMKilled", 137, 0)}), "OOMKilled", 0, 1},
		{"signal", pod(corev1.PodFailed, nil, []string{"a"}, nil, []corev1.ContainerStatus{terminated("a", "", 0, 9)}), "Signal:9", 0, 1},
		{"exit code", pod(corev1.PodFailed, nil, []string{"a"}, nil, []corev1.ContainerStatus{terminated("a", "", 3, 0)}), "ExitCode:3", 0, 1},
		{"completed + running, not ready", completedAndRunning, "NotReady", 1, 2},
		{"completed + running, ready", completedAndRunningReady, "Running", 1, 2},
		{"init waiting", pod(corev1.PodPending, []string{"i1", "i2"}, []string{"a"},
			[]corev1.ContainerStatus{terminated("i1", "Completed", 0, 0), waiting("i2", "PodInitializing")},
			[]corev1.ContainerStatus{waiting("a", "PodInitializing")}), "Init:1/2", 0, 1},
		{"init crashloop", pod(corev1.PodPending, []string{"i1"}, []string{"a"},
			[]corev1.ContainerStatus{waiting("i1", "CrashLoopBackOff")}, nil), "Init:CrashLoopBackOff", 0, 1},
		{"init error", pod(corev1.PodPending, []string{"i1"}, []string{"a"},
			[]corev1.ContainerStatus{terminated("i1", "Error", 1, 0)}, nil), "Init:Error", 0, 1},
		{"init signal", pod(corev1.PodPending, []string{"i1"}, []string{"a"},
			[]corev1.ContainerStatus{terminated("i1", "", 143, 15)}, nil), "Init:Signal:15", 0, 1},
		{"init exit code", pod(corev1.PodPending, []string{"i1"}, []string{"a"},
			[]corev1.ContainerStatus{terminated("i1", "", 2, 0)}, nil), "Init:ExitCode:2", 0, 1},
		{"init running", pod(corev1.PodPending, []string{"i1"}, []string{"a"},
			[]corev1.ContainerStatus{running("i1", false, 0)}, nil), "Init:0/1", 0, 1},
		{"sidecar started", withSidecar, "Running", 2, 2},
		{"terminating", deleting, "Terminating", 1, 1},
		{"deleted but done", deletedDone, "Completed", 0, 1},
		{"node lost", lost, "Unknown", 0, 1},
		{"evicted", evicted, "Evicted", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodReason(tc.pod); got != tc.want {
				t.Errorf("PodReason = %q, want %q", got, tc.want)
			}
			if r, n := ReadyCount(tc.pod); r != tc.ready || n != tc.tot {
				t.Errorf("ReadyCount = %d/%d, want %d/%d", r, n, tc.ready, tc.tot)
			}
		})
	}
}

func TestRestarts(t *testing.T) {
	p := pod(corev1.PodRunning, []string{"i"}, []string{"a", "b"},
		[]corev1.ContainerStatus{terminated("i", "Completed", 0, 0)},
		[]corev1.ContainerStatus{running("a", true, 2), running("b", true, 1)})
	p.Status.InitContainerStatuses[0].RestartCount = 5 // not counted once initialized
	last := now.Add(-2 * time.Minute)
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: metav1.Time{Time: last.Add(-time.Hour)}}
	p.Status.ContainerStatuses[1].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: metav1.Time{Time: last}}
	n, at := Restarts(p)
	if n != 3 || at == nil || !at.Equal(last) {
		t.Errorf("Restarts = %d, %v", n, at)
	}
	if n, at := Restarts(pod(corev1.PodRunning, nil, []string{"a"}, nil, []corev1.ContainerStatus{running("a", true, 0)})); n != 0 || at != nil {
		t.Errorf("Restarts = %d, %v", n, at)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second:             "5s",
		119 * time.Second:           "119s",
		200 * time.Second:           "3m20s",
		10 * time.Minute:            "10m",
		3*time.Hour + 5*time.Minute: "3h5m",
		51 * time.Hour:              "2d3h",
		30 * 24 * time.Hour:         "30d",
		-5 * time.Second:            "<invalid>",
	} {
		if got := Age(now.Add(-d), now); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
	if got := Age(time.Time{}, now); got != "<unknown>" {
		t.Errorf("Age(zero) = %q", got)
	}
}

func tablePods() []corev1.Pod {
	web := pod(corev1.PodRunning, nil, []string{"nginx"}, nil, []corev1.ContainerStatus{running("nginx", true, 3)})
	web.Name, web.Namespace = "web-node1", "default"
	web.CreationTimestamp = metav1.Time{Time: now.Add(-83 * time.Second)}
	web.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: metav1.Time{Time: now.Add(-2 * time.Minute)}}
	web.Status.PodIP = "10.88.0.5"
	web.Spec.NodeName = "node1"
	web.Annotations = map[string]string{
		wellknown.AnnotationManifest:      "/etc/kubernetes/manifests/web.yaml",
		wellknown.AnnotationManifestError: "yaml: line 3: did not find expected key",
	}
	db := pod(corev1.PodPending, nil, []string{"db"}, nil, []corev1.ContainerStatus{waiting("db", "ImagePullBackOff")})
	db.Name, db.Namespace = "db-node1", "kube-system"
	db.CreationTimestamp = metav1.Time{Time: now.Add(-51 * time.Hour)}
	db.Spec.NodeName = "node1"
	return []corev1.Pod{*web, *db}
}

func TestPrintPods(t *testing.T) {
	var b bytes.Buffer
	if err := PrintPods(&b, tablePods(), false, now, nil); err != nil {
		t.Fatal(err)
	}
	want := `NAME        READY   STATUS             RESTARTS     AGE
web-node1   1/1     Running            3 (2m ago)   83s
db-node1    0/1     ImagePullBackOff   0            2d3h

web-node1: manifest /etc/kubernetes/manifests/web.yaml: yaml: line 3: did not find expected key (running last good version)
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := PrintPodTable(&b, tablePods(), Options{Wide: true, AllNamespaces: true}, now, map[string]string{"web-node1": "custom message"}); err != nil {
		t.Fatal(err)
	}
	want = `NAMESPACE     NAME        READY   STATUS             RESTARTS     AGE    IP          NODE    MANIFEST
default       web-node1   1/1     Running            3 (2m ago)   83s    10.88.0.5   node1   /etc/kubernetes/manifests/web.yaml
kube-system   db-node1    0/1     ImagePullBackOff   0            2d3h   <none>      node1   <none>

web-node1: custom message
`
	if b.String() != want {
		t.Errorf("wide got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	PrintPods(&b, nil, false, now, nil)
	if b.String() != "No pods found.\n" {
		t.Errorf("empty: %q", b.String())
	}

	b.Reset()
	PrintProblems(&b, []string{"manifest /etc/m/x.yaml: bad", "manifest /etc/m/a.yaml: worse"})
	if b.String() != "problem: manifest /etc/m/a.yaml: worse\nproblem: manifest /etc/m/x.yaml: bad\n" {
		t.Errorf("problems: %q", b.String())
	}
}

func TestPrintPodList(t *testing.T) {
	list := &corev1.PodList{Items: tablePods()}
	for _, format := range []string{"json", "yaml"} {
		var b bytes.Buffer
		if err := PrintPodList(&b, list, format); err != nil {
			t.Fatal(err)
		}
		var back corev1.PodList
		var err error
		if format == "json" {
			err = json.Unmarshal(b.Bytes(), &back)
		} else {
			err = yaml.Unmarshal(b.Bytes(), &back)
		}
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if back.Kind != "List" || back.APIVersion != "v1" || len(back.Items) != 2 || back.Items[0].Kind != "Pod" || back.Items[0].Name != "web-node1" {
			t.Errorf("%s round trip: %+v", format, back.TypeMeta)
		}
	}
	if err := PrintPodList(&bytes.Buffer{}, list, "xml"); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("err = %v", err)
	}
}
