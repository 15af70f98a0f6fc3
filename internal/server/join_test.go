package server

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ballast-dev/ballast/internal/bootstrap"
)

// A node joins the whole server with a bootstrap token, acts as itself
// with the certificate it gets (and only as itself), and its name cannot be
// joined again while its Node is Ready; the token is no API credential.
func TestJoinThroughTheServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = s.Wait() }()
	token, _, err := s.Tokens.CreateJoinToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts := bootstrap.JoinOptions{Server: s.URL, Token: token, CAHash: s.PKI.CAHash(), NodeName: "w1"}
	creds, err := bootstrap.Join(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(&rest.Config{Host: s.URL, TLSClientConfig: rest.TLSClientConfig{CAData: creds.CAPEM, CertData: creds.CertPEM, KeyData: creds.KeyPEM}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the joined node cannot register itself: %v", err)
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w2"}}, metav1.CreateOptions{}); err == nil {
		t.Error("the joined node registered another node")
	}
	// Not Ready yet: the name can be joined again (a node that lost its
	// credentials); Ready: refused.
	if _, err := bootstrap.Join(ctx, opts); err != nil {
		t.Fatalf("re-join of a node that is not Ready: %v", err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Join(ctx, opts); err == nil || !strings.Contains(err.Error(), "is registered and Ready") {
		t.Errorf("join under a Ready node's name: %v", err)
	}
	// The bootstrap token opens no API request.
	tc, err := kubernetes.NewForConfig(&rest.Config{Host: s.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: s.PKI.CAPEM()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("a bootstrap token used as an API credential: %v", err)
	}
}
