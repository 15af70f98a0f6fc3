package cri

import (
	"strings"
	"testing"
)

func TestPidOf(t *testing.T) {
	tests := []struct {
		name    string
		info    map[string]string
		want    int
		wantErr string
	}{
		{"containerd", map[string]string{"info": `{"sandboxID":"s1","pid":4242,"removing":false,"runtimeSpec":{}}`}, 4242, ""},
		{"not verbose", nil, 0, "has no info"},
		{"exited container", map[string]string{"info": `{"pid":0}`}, 0, "gives no pid"},
		{"not JSON", map[string]string{"info": `pid=1`}, 0, "verbose container status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pidOf(tc.info)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("pidOf = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
