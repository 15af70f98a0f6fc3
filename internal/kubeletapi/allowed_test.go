package kubeletapi

import "testing"

// TestAllowedMetricsAndStats: the kubelet maps /metrics* to nodes/metrics
// and /stats to nodes/stats; the API server's identity, admins and the node
// itself may read them, another node never.
func TestAllowedMetricsAndStats(t *testing.T) {
	for _, tc := range []struct {
		user   string
		groups []string
		path   string
		want   bool
	}{
		{"system:kube-apiserver", []string{"system:masters", "ballast:client-cert"}, "/metrics", true},
		{"admin", []string{"system:masters"}, "/stats/summary", true},
		{"system:node:n1", nil, "/metrics/resource", true},
		{"system:node:n2", []string{"system:nodes", "ballast:client-cert"}, "/metrics", false},
		{"system:node:n2", []string{"system:nodes", "ballast:client-cert"}, "/stats/summary", false},
		{"system:node:n2", []string{"system:nodes", "ballast:client-cert"}, "/containerLogs/default/p/c", false},
		{"system:node:n2", []string{"system:nodes"}, "/healthz", true},
		{"someone", []string{"system:authenticated"}, "/metrics", false},
	} {
		if got := allowed(tc.user, tc.groups, "n1", tc.path); got != tc.want {
			t.Errorf("%s %v %s: allowed = %v, want %v", tc.user, tc.groups, tc.path, got, tc.want)
		}
	}
}
