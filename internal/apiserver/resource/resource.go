// Package resource describes the API resources Ballast's API server serves:
// one Info per resource, shared by the REST handlers, discovery, OpenAPI and
// the table printers, so they never disagree about what exists.
package resource

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Info describes one served resource.
type Info struct {
	Group      string // "" for the core group
	Version    string // "v1"
	Kind       string // "Pod"
	ListKind   string // "PodList"
	Resource   string // plural, lowercase: "pods"
	Singular   string // "pod"
	ShortNames []string
	Namespaced bool
	Verbs      []string // get, list, watch, create, update, patch, delete, deletecollection
	// Subresources served, e.g. "status", "log".
	Subresources []string
	Categories   []string
	// New returns an empty object of the kind (for decoding and OpenAPI).
	New func() any
}

// GVR is the resource's group/version/resource.
func (i Info) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: i.Group, Version: i.Version, Resource: i.Resource}
}

// GVK is the resource's group/version/kind.
func (i Info) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: i.Group, Version: i.Version, Kind: i.Kind}
}

// GroupVersion is "v1" for the core group, else "group/version".
func (i Info) GroupVersion() string {
	if i.Group == "" {
		return i.Version
	}
	return i.Group + "/" + i.Version
}
