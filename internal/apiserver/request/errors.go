package request

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

// Error is an error that carries the metav1.Status sent to the client.
// Every error a handler returns is turned into one at the edge (ToStatus).
type Error struct{ Status metav1.Status }

func (e *Error) Error() string { return e.Status.Message }

// NewStatus is a failure Status with code, reason and message.
func NewStatus(code int32, reason metav1.StatusReason, msg string) *Error {
	return &Error{metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}}
}

// BadRequest is a 400 with a formatted message.
func BadRequest(format string, args ...any) *Error {
	return NewStatus(http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf(format, args...))
}

// NotFound is kube-apiserver's 404 for the object gr/name.
func NotFound(gr schema.GroupResource, name string) *Error {
	return FromAPIErr(apierrors.NewNotFound(gr, name))
}

// Forbidden is kube-apiserver's 403 for the object gr/name, saying why.
func Forbidden(gr schema.GroupResource, name, msg string) *Error {
	s := apierrors.NewForbidden(gr, name, errors.New(msg)).ErrStatus
	return &Error{s}
}

// Conflict is kube-apiserver's 409 for the object gr/name.
func Conflict(gr schema.GroupResource, name, msg string) *Error {
	return FromAPIErr(apierrors.NewConflict(gr, name, errors.New(msg)))
}

// ModifiedMsg is the message of a conflict on a changed object.
const ModifiedMsg = "the object has been modified; please apply your changes to the latest version and try again"

// Invalid is a 422 naming the field of the object kind/name that is wrong.
func Invalid(kind, name string, field, msg string) *Error {
	s := &Error{metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity, Reason: metav1.StatusReasonInvalid,
		Details: &metav1.StatusDetails{Kind: kind, Name: name, Causes: []metav1.StatusCause{{
			Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: msg,
		}}},
	}}
	s.Status.Message = fmt.Sprintf("%s %q is invalid: %s: %s", kind, name, field, msg)
	return s
}

// Gone is a 410 (Expired): a resourceVersion or continue token too old.
func Gone(msg string) *Error {
	return NewStatus(http.StatusGone, metav1.StatusReasonExpired, msg)
}

// UnsupportedMedia is a 415.
func UnsupportedMedia(msg string) *Error {
	return NewStatus(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, msg)
}

// MethodNotAllowed is a 405.
func MethodNotAllowed(msg string) *Error {
	return NewStatus(http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, msg)
}

// InternalError is a 500 carrying err.
func InternalError(err error) *Error {
	return NewStatus(http.StatusInternalServerError, metav1.StatusReasonInternalError,
		fmt.Sprintf("Internal error occurred: %v", err))
}

// Unavailable is a 503.
func Unavailable(msg string) *Error {
	return NewStatus(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, msg)
}

// FromAPIErr carries an apimachinery StatusError's Status.
func FromAPIErr(err *apierrors.StatusError) *Error { return &Error{err.ErrStatus} }

// StorageError translates a storage error for the object gr/name.
func StorageError(err error, gr schema.GroupResource, name string) *Error {
	var se *Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, storage.ErrNotFound):
		return NotFound(gr, name)
	case errors.Is(err, storage.ErrAlreadyExists):
		return FromAPIErr(apierrors.NewAlreadyExists(gr, name))
	case errors.Is(err, storage.ErrConflict):
		return Conflict(gr, name, ModifiedMsg)
	case errors.Is(err, storage.ErrCompacted):
		return Gone(fmt.Sprintf("The resourceVersion for the provided request is too old (%v); list again to get a current resourceVersion.", err))
	case errors.Is(err, storage.ErrInvalidContinue):
		return BadRequest("continue key is not valid: %v", err)
	case errors.Is(err, storage.ErrInsufficientStorage):
		return NewStatus(http.StatusInsufficientStorage, "InsufficientStorage", err.Error())
	case errors.Is(err, storage.ErrUnavailable):
		return Unavailable(fmt.Sprintf("the API server's storage (etcd) is unavailable: %v; retry shortly", err))
	}
	return InternalError(err)
}

// ToStatus is the Status answering err: its own, or a 500.
func ToStatus(err error) metav1.Status {
	var se *Error
	if errors.As(err, &se) {
		return se.Status
	}
	return InternalError(err).Status
}

// WriteStatus writes s with the fields kube-apiserver always writes: kind,
// apiVersion, metadata, status, message, reason, details and code. A
// failure without details gets "details": {} (clients such as kubectl debug
// read Status.Details without checking it), and a failure without a reason
// gets the one its code implies.
func WriteStatus(w http.ResponseWriter, s metav1.Status) {
	s.Kind, s.APIVersion = "Status", "v1"
	if s.Status == metav1.StatusFailure {
		if s.Details == nil {
			s.Details = &metav1.StatusDetails{}
		}
		if s.Reason == "" {
			s.Reason = ReasonForCode(s.Code)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(s.Code))
	_ = json.NewEncoder(w).Encode(s)
}

// WriteError answers with ToStatus(err).
func WriteError(w http.ResponseWriter, err error) { WriteStatus(w, ToStatus(err)) }

// ReasonForCode is the StatusReason kube-apiserver gives an HTTP code
// (apierrors.NewGenericServerResponse's table).
func ReasonForCode(code int32) metav1.StatusReason {
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

// TooLarge answers a request whose object is too large to store.
func TooLarge(msg string) *Error {
	return NewStatus(http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, msg)
}
