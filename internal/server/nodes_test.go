package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestKubeletAddress(t *testing.T) {
	node := func(port int32, addrs ...corev1.NodeAddress) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		n.Status.Addresses = addrs
		return n
	}
	for _, tc := range []struct {
		name    string
		n       *corev1.Node
		host    string
		wantErr string
	}{
		{"internal IP and port", node(10250, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "h"}, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}), "10.0.0.5", ""},
		{"no port", node(0, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}), "", "publishes no kubelet port"},
		{"no internal IP", node(10250, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "h"}), "", "has no InternalIP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, err := kubeletAddress(tc.n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "n1") {
					t.Fatalf("err = %v, want one naming the node and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || host != tc.host || port != 10250 {
				t.Fatalf("= %q, %d, %v", host, port, err)
			}
		})
	}
}

func TestNodeDialerLocalNodesFirst(t *testing.T) {
	local := &url.URL{Scheme: "http", Host: "ballast"}
	d := &nodeDialer{local: map[string]NodeDialer{"me": func(context.Context, string) (*http.Client, *url.URL, error) {
		return http.DefaultClient, local, nil
	}}}
	if _, u, err := d.dial(context.Background(), "me"); err != nil || u != local {
		t.Fatalf("local node: %v, %v", u, err)
	}
	// Another node before the server listens: a clear error, no panic.
	if _, _, err := d.dial(context.Background(), "other"); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("remote node before listening: err = %v", err)
	}
}
