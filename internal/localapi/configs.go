package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
)

// ConfigProvider is implemented by a Provider that has node-local
// ConfigMaps and Secrets; Handler then serves them on /configmaps and
// /secrets (Ballast paths), as v1 lists. Secrets come without their values:
// the provider never hands them out.
type ConfigProvider interface {
	ConfigMaps() []corev1.ConfigMap
	Secrets() []corev1.Secret
}

func (h *handler) configMaps(w http.ResponseWriter, r *http.Request) {
	list := corev1.ConfigMapList{Items: []corev1.ConfigMap{}}
	list.APIVersion, list.Kind = "v1", "ConfigMapList"
	if cp, ok := h.p.(ConfigProvider); ok {
		list.Items = append(list.Items, cp.ConfigMaps()...)
	}
	h.writeJSON(w, &list)
}

func (h *handler) secrets(w http.ResponseWriter, r *http.Request) {
	list := corev1.SecretList{Items: []corev1.Secret{}}
	list.APIVersion, list.Kind = "v1", "SecretList"
	if cp, ok := h.p.(ConfigProvider); ok {
		list.Items = append(list.Items, cp.Secrets()...)
	}
	h.writeJSON(w, &list)
}

func (h *handler) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("encoding an answer", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// ConfigMaps returns the node's ConfigMaps.
func (c *Client) ConfigMaps(ctx context.Context) (*corev1.ConfigMapList, error) {
	var list corev1.ConfigMapList
	return &list, c.getJSON(ctx, "/configmaps", &list)
}

// Secrets returns the node's Secrets, without their values.
func (c *Client) Secrets(ctx context.Context) (*corev1.SecretList, error) {
	var list corev1.SecretList
	return &list, c.getJSON(ctx, "/secrets", &list)
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decoding the agent's answer to %s: %w", path, err)
	}
	return nil
}
