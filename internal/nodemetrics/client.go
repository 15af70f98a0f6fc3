package nodemetrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// GetSummary reads a node's /stats/summary (CPU and memory only) at base:
// the local socket (`ballast top`) or a node's kubelet API (the server's
// metrics API).
func GetSummary(ctx context.Context, client *http.Client, base *url.URL) (*statsapi.Summary, error) {
	u := *base
	u.Path = path.Join("/", base.Path, "stats/summary")
	u.RawQuery = "only_cpu_and_memory=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("GET /stats/summary: %s: %s", resp.Status, b)
	}
	var s statsapi.Summary
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding /stats/summary: %w", err)
	}
	return &s, nil
}
