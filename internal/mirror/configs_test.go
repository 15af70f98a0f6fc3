package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

const configMarker = "s3cr3t-mirror-marker"

// configSource is the agent's config objects as the sync sees them.
type configSource struct {
	mu      sync.Mutex
	configs []*manifest.Config
	changed chan struct{}
}

func (c *configSource) Configs() []*manifest.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.configs
}

func (c *configSource) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *configSource) set(t *testing.T, yaml string) {
	t.Helper()
	f, err := manifest.ParseFile("/etc/kubernetes/manifests/app.yaml", []byte(yaml), testNode)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.configs = f.Configs
	close(c.changed)
	c.changed = make(chan struct{})
}

func configYAML(value string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata: {name: app, labels: {team: a}}
data: {app.conf: ` + value + `}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: ` + configMarker + `}
`
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startConfigs(t *testing.T, client *fake.Clientset, secretData bool) (*configSource, *lockedLog) {
	t.Helper()
	if _, err := client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "node-uid"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	src := &configSource{changed: make(chan struct{})}
	src.set(t, configYAML("v1"))
	log := &lockedLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = RunConfigs(ctx, ConfigOptions{Client: client, NodeName: testNode, Source: src, SecretData: secretData,
			Log: slog.New(slog.NewTextHandler(log, nil)), RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, ForbiddenMax: 50 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return src, log
}

func getCM(client *fake.Clientset) (*corev1.ConfigMap, error) {
	return client.CoreV1().ConfigMaps("default").Get(context.Background(), "app-"+testNode, metav1.GetOptions{})
}

func TestMirrorConfigs(t *testing.T) {
	client := fake.NewClientset()
	src, log := startConfigs(t, client, false)
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, err := getCM(client); err != nil {
			return err
		}
		_, err := client.CoreV1().Secrets("default").Get(context.Background(), "creds-"+testNode, metav1.GetOptions{})
		return err
	})
	cm, _ := getCM(client)
	if cm.Data["app.conf"] != "v1" || cm.Labels["team"] != "a" || cm.Labels[wellknown.LabelNode] != testNode ||
		cm.Annotations[wellknown.AnnotationManifest] != "/etc/kubernetes/manifests/app.yaml" || cm.Annotations[wellknown.AnnotationConfigMirror] == "" ||
		len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Kind != "Node" || cm.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("mirror ConfigMap: %+v", cm)
	}
	s, _ := client.CoreV1().Secrets("default").Get(context.Background(), "creds-"+testNode, metav1.GetOptions{})
	if v, ok := s.Data["password"]; !ok || len(v) != 0 || s.Annotations[wellknown.AnnotationSecretData] != wellknown.SecretDataNodeLocal {
		t.Errorf("mirror Secret: %+v", s)
	}

	// The file changes: the mirror follows.
	src.set(t, configYAML("v2"))
	testutil.Eventually(t, 10*time.Second, func() error {
		cm, err := getCM(client)
		if err != nil {
			return err
		}
		if cm.Data["app.conf"] != "v2" {
			return fmt.Errorf("data %v", cm.Data)
		}
		return nil
	})
	// Deleted through the API: back at once.
	if err := client.CoreV1().ConfigMaps("default").Delete(context.Background(), "app-"+testNode, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := getCM(client)
		return err
	})
	// Gone from the file: gone from the API.
	src.set(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}]}\n")
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, err := getCM(client); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the mirror is still there (%v)", err)
		}
		return nil
	})
	if strings.Contains(log.String(), configMarker) {
		t.Errorf("the log shows the secret value")
	}
}

func TestMirrorSecretData(t *testing.T) {
	client := fake.NewClientset()
	startConfigs(t, client, true)
	testutil.Eventually(t, 10*time.Second, func() error {
		s, err := client.CoreV1().Secrets("default").Get(context.Background(), "creds-"+testNode, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if string(s.Data["password"]) != configMarker || s.Annotations[wellknown.AnnotationSecretData] != "" {
			return errors.New("values not published")
		}
		return nil
	})
}

// An API server that does not let the node write ConfigMaps (kube-apiserver
// with NodeRestriction): logged once, the Secrets are still mirrored, and
// the node asks again later (with a back-off) without logging again.
func TestMirrorConfigsForbidden(t *testing.T) {
	client := fake.NewClientset()
	var mu sync.Mutex
	asked := 0
	client.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		mu.Lock()
		asked++
		mu.Unlock()
		return true, nil, apierrors.NewForbidden(corev1.Resource("configmaps"), "", errNodeRestriction)
	})
	_, log := startConfigs(t, client, false)
	testutil.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if asked < 3 {
			return fmt.Errorf("asked %d times", asked)
		}
		_, err := client.CoreV1().Secrets("default").Get(context.Background(), "creds-"+testNode, metav1.GetOptions{})
		return err
	})
	if n := strings.Count(log.String(), "does not let this node publish its ConfigMaps"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, log.String())
	}
}

var errNodeRestriction = errors.New("node n1 can only read configmaps referenced by its pods")
