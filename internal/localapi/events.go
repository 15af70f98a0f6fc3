package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
)

// EventProvider is implemented by a Provider that records events; Handler
// then serves them on /events as a v1 EventList, so what happened to a pod
// (pulls, starts, kills, back-offs, failed probes) is visible with no API
// server.
type EventProvider interface {
	Events() []corev1.Event
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	list := corev1.EventList{}
	list.APIVersion, list.Kind = "v1", "EventList"
	if ep, ok := h.p.(EventProvider); ok {
		list.Items = ep.Events()
	}
	if list.Items == nil {
		list.Items = []corev1.Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&list)
}

// Events returns the events the agent recorded, oldest first.
func (c *Client) Events(ctx context.Context) (*corev1.EventList, error) {
	resp, err := c.do(ctx, "/events", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list corev1.EventList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("decoding the agent's events: %w", err)
	}
	return &list, nil
}
