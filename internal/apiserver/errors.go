package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ballast-dev/ballast/internal/storage"
)

// statusError is an error that carries the metav1.Status sent to the client.
// Every error a handler returns is turned into one at the edge (toStatus).
type statusError struct{ s metav1.Status }

func (e *statusError) Error() string { return e.s.Message }

func newStatus(code int32, reason metav1.StatusReason, msg string) *statusError {
	return &statusError{metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}}
}

func badRequest(format string, args ...any) *statusError {
	return newStatus(http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf(format, args...))
}

func notFound(gr schema.GroupResource, name string) *statusError {
	return fromAPIErr(apierrors.NewNotFound(gr, name))
}

func forbidden(gr schema.GroupResource, name, msg string) *statusError {
	s := apierrors.NewForbidden(gr, name, errors.New(msg)).ErrStatus
	return &statusError{s}
}

func conflict(gr schema.GroupResource, name, msg string) *statusError {
	return fromAPIErr(apierrors.NewConflict(gr, name, errors.New(msg)))
}

const modifiedMsg = "the object has been modified; please apply your changes to the latest version and try again"

func invalid(kind, name string, field, msg string) *statusError {
	s := &statusError{metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity, Reason: metav1.StatusReasonInvalid,
		Details: &metav1.StatusDetails{Kind: kind, Name: name, Causes: []metav1.StatusCause{{
			Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: msg,
		}}},
	}}
	s.s.Message = fmt.Sprintf("%s %q is invalid: %s: %s", kind, name, field, msg)
	return s
}

func gone(msg string) *statusError {
	return newStatus(http.StatusGone, metav1.StatusReasonExpired, msg)
}

func unsupportedMedia(msg string) *statusError {
	return newStatus(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, msg)
}

func methodNotAllowed(msg string) *statusError {
	return newStatus(http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, msg)
}

func internalError(err error) *statusError {
	return newStatus(http.StatusInternalServerError, metav1.StatusReasonInternalError,
		fmt.Sprintf("Internal error occurred: %v", err))
}

func unavailable(msg string) *statusError {
	return newStatus(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, msg)
}

func fromAPIErr(err *apierrors.StatusError) *statusError { return &statusError{err.ErrStatus} }

// storageError translates a storage error for the object gr/name.
func storageError(err error, gr schema.GroupResource, name string) *statusError {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, storage.ErrNotFound):
		return notFound(gr, name)
	case errors.Is(err, storage.ErrAlreadyExists):
		return fromAPIErr(apierrors.NewAlreadyExists(gr, name))
	case errors.Is(err, storage.ErrConflict):
		return conflict(gr, name, modifiedMsg)
	case errors.Is(err, storage.ErrCompacted):
		return gone(fmt.Sprintf("The resourceVersion for the provided request is too old (%v); list again to get a current resourceVersion.", err))
	case errors.Is(err, storage.ErrInvalidContinue):
		return badRequest("continue key is not valid: %v", err)
	case errors.Is(err, storage.ErrInsufficientStorage):
		return newStatus(http.StatusInsufficientStorage, "InsufficientStorage", err.Error())
	case errors.Is(err, storage.ErrUnavailable):
		return unavailable(fmt.Sprintf("the API server's storage (etcd) is unavailable: %v; retry shortly", err))
	}
	return internalError(err)
}

func toStatus(err error) metav1.Status {
	var se *statusError
	if errors.As(err, &se) {
		return se.s
	}
	return internalError(err).s
}

// writeStatus writes s with the fields kube-apiserver always writes: kind,
// apiVersion, metadata, status, message, reason, details and code. A
// failure without details gets "details": {} (clients such as kubectl debug
// read Status.Details without checking it), and a failure without a reason
// gets the one its code implies.
func writeStatus(w http.ResponseWriter, s metav1.Status) {
	s.Kind, s.APIVersion = "Status", "v1"
	if s.Status == metav1.StatusFailure {
		if s.Details == nil {
			s.Details = &metav1.StatusDetails{}
		}
		if s.Reason == "" {
			s.Reason = reasonForCode(s.Code)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(s.Code))
	_ = json.NewEncoder(w).Encode(s)
}

func writeError(w http.ResponseWriter, err error) { writeStatus(w, toStatus(err)) }

// reasonForCode is the StatusReason kube-apiserver gives an HTTP code
// (apierrors.NewGenericServerResponse's table).
func reasonForCode(code int32) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusNotAcceptable:
		return metav1.StatusReasonNotAcceptable
	case http.StatusConflict:
		return metav1.StatusReasonConflict
	case http.StatusGone:
		return metav1.StatusReasonGone
	case http.StatusRequestEntityTooLarge:
		return metav1.StatusReasonRequestEntityTooLarge
	case http.StatusUnsupportedMediaType:
		return metav1.StatusReasonUnsupportedMediaType
	case http.StatusUnprocessableEntity:
		return metav1.StatusReasonInvalid
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	}
	if code >= 500 {
		return metav1.StatusReasonInternalError
	}
	return metav1.StatusReasonUnknown
}

// tooLarge answers a request whose object is too large to store.
func tooLarge(msg string) *statusError {
	return newStatus(http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, msg)
}
