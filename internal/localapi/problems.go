package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ManifestProblem is a manifest file the agent cannot use, and the pods it
// keeps running from that file's last good content.
type ManifestProblem struct {
	File  string   `json:"file"`
	Error string   `json:"error"`
	Pods  []string `json:"pods,omitempty"`
}

// ProblemProvider is implemented by a Provider that knows about manifest
// files it cannot use; Handler then serves them on /manifests/problems (a
// Ballast path: the kubelet has no such thing, and a file with no pod would
// otherwise be invisible without reading the log).
type ProblemProvider interface {
	ManifestProblems() []ManifestProblem
}

func (h *handler) problems(w http.ResponseWriter, r *http.Request) {
	var out []ManifestProblem
	if pp, ok := h.p.(ProblemProvider); ok {
		out = pp.ManifestProblems()
	}
	if out == nil {
		out = []ManifestProblem{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// NodeProblemsPath serves what is wrong with the node itself rather than
// with a manifest (its disk nearly full, say): a JSON list of sentences.
// A Mount serves it (internal/diskspace.Monitor.Mount).
const NodeProblemsPath = "/node/problems"

// NodeProblems returns what is wrong with the node itself (none from an
// agent that does not serve NodeProblemsPath).
func (c *Client) NodeProblems(ctx context.Context) ([]string, error) {
	resp, err := c.do(ctx, NodeProblemsPath, nil)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
			return nil, nil
		}
		return nil, err
	}
	defer resp.Body.Close()
	var out []string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding the agent's node problems: %w", err)
	}
	return out, nil
}

// ManifestProblems returns the manifest files the agent cannot use.
func (c *Client) ManifestProblems(ctx context.Context) ([]ManifestProblem, error) {
	resp, err := c.do(ctx, "/manifests/problems", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []ManifestProblem
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding the agent's manifest problems: %w", err)
	}
	return out, nil
}
