// Package auth owns who may do what on Ballast's API server: the cluster's
// PKI (a CA, serving and client certificates), bearer tokens, authenticating
// a request, authorizing it (admin, nodes restricted to their own objects),
// and writing kubeconfig files.
package auth

// User is an authenticated caller.
type User struct {
	Name   string
	Groups []string
}

// Well-known names, as Kubernetes uses them.
const (
	GroupMasters       = "system:masters"
	GroupNodes         = "system:nodes"
	GroupAuthenticated = "system:authenticated"
	NodeUserPrefix     = "system:node:"
	AdminUser          = "ballast-admin"
)

// NodeName returns the node a user acts for ("system:node:<name>" in group
// system:nodes), or "" when the user is not a node.
func (u User) NodeName() string {
	if len(u.Name) <= len(NodeUserPrefix) || u.Name[:len(NodeUserPrefix)] != NodeUserPrefix {
		return ""
	}
	for _, g := range u.Groups {
		if g == GroupNodes {
			return u.Name[len(NodeUserPrefix):]
		}
	}
	return ""
}

// Attributes describe one request, for authorization.
type Attributes struct {
	User        User
	Verb        string // get, list, watch, create, update, patch, delete, deletecollection
	Group       string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	// Path is set for non-resource requests (/healthz, /version, /api, ...).
	Path string
	// LabelSelector is a list's or watch's labelSelector, as given: a
	// node may list its own mirror Secrets only (SelectsNode).
	LabelSelector string
}

// Decision is the result of authorizing a request.
type Decision struct {
	Allowed bool
	// Reason explains a denial, for the 403 message.
	Reason string
}
