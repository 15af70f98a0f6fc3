// Package bootstrap owns how a node joins a cluster (`ballast join`, as
// kubeadm's TLS bootstrap does it): the server's two endpoints (the CA,
// which anyone may read, and a node's client certificate in exchange for a
// bootstrap token and a certificate request), the joining side (the CA is
// checked against the pinned hash before anything is sent to the server,
// and the node's private key never leaves the node), and the node's
// credential files in its data dir.
package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/auth"
)

// The join endpoints, on the API server's listener.
const (
	PathPrefix      = "/join/v1/"
	CAURLPath       = PathPrefix + "ca"
	CertificatePath = PathPrefix + "certificate"
)

// maxRequest bounds a certificate request's body.
const maxRequest = 64 << 10

// CertificateRequest is the body of a POST to CertificatePath.
type CertificateRequest struct {
	// CSR is a PEM certificate request for CommonName system:node:<name>,
	// Organization system:nodes.
	CSR string `json:"csr"`
}

// CertificateResponse is the answer: the node's client certificate (PEM).
type CertificateResponse struct {
	Certificate string `json:"certificate"`
}

// Handler serves the join endpoints.
type Handler struct {
	PKI    *auth.PKI
	Tokens *auth.TokenStore
	// NodeReady tells whether a Node of that name is registered and Ready
	// (a join under that name is refused: it would take the node over).
	NodeReady func(ctx context.Context, name string) (bool, error)
	Log       *slog.Logger
	// Now is the clock tokens expire by (nil: time.Now).
	Now func() time.Time
}

// Handles tells whether path is one of the join endpoints.
func Handles(path string) bool { return strings.HasPrefix(path, PathPrefix) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case CAURLPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "GET the CA")
			return
		}
		// Public: the joining node checks it against its pinned hash.
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(h.PKI.CAPEM())
	case CertificatePath:
		if r.Method != http.MethodPost {
			writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "POST a certificate request")
			return
		}
		h.certificate(w, r)
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("no join endpoint %s (there are %s and %s)", r.URL.Path, CAURLPath, CertificatePath))
	}
}

func (h *Handler) certificate(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	token, ok := auth.BearerToken(r)
	if !ok {
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "a join needs a bootstrap token (Authorization: Bearer): create one on the control plane with `ballast server token create --join`")
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	info, err := h.Tokens.CheckJoinToken(token, now())
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, err.Error()+": create a new one on the control plane with `ballast server token create --join`")
		return
	case errors.Is(err, auth.ErrNotJoinToken):
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, err.Error()+": a join takes a bootstrap token, from `ballast server token create --join`")
		return
	case err != nil:
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "unknown or revoked bootstrap token: create one on the control plane with `ballast server token create --join` (`ballast server token list` shows the valid ones)")
		return
	}
	var req CertificateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req); err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the body must be JSON {\"csr\": \"<PEM certificate request>\"}: "+err.Error())
		return
	}
	name, err := nodeOfCSR(req.CSR)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	if h.NodeReady != nil {
		ready, err := h.NodeReady(r.Context(), name)
		if err != nil {
			writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, fmt.Sprintf("checking whether node %s exists: %v; try again", name, err))
			return
		}
		if ready {
			writeStatus(w, http.StatusConflict, metav1.StatusReasonConflict, fmt.Sprintf("a Node named %s is registered and Ready: join under another --node-name, or stop that node and `kubectl delete node %s` first", name, name))
			return
		}
	}
	_, cert, err := h.PKI.SignNodeCSR([]byte(req.CSR))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	log.Info("node joined: issued its client certificate", "node", name, "token", info.ID, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(CertificateResponse{Certificate: string(cert)})
}

// nodeOfCSR checks the request as SignNodeCSR will, for the node's name.
func nodeOfCSR(csrPEM string) (string, error) {
	name, err := auth.NodeOfCSR([]byte(csrPEM))
	if err != nil {
		return "", fmt.Errorf("certificate request: %w", err)
	}
	return name, nil
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	})
}
