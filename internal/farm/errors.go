package farm

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller did wrong, so that the HTTP
// layer can map it to a status code in one place.
type Kind int

// The kinds of error. The zero value is an internal error: anything not
// classified on purpose must never leak its details to a client.
const (
	KindInternal     Kind = iota
	KindInvalid           // 400: bad input or a transition the status forbids
	KindUnauthorized      // 401
	KindForbidden         // 403
	KindNotFound          // 404, also for another workspace's ids
	KindConflict          // 409: a true concurrency conflict
	KindTooLarge          // 413
	KindRateLimited       // 429
)

// Error is an error a client is meant to read: a stable code for programs,
// a message that says what to fix for people, and the request field it is
// about, when there is one.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Error codes that clients can rely on.
const (
	CodeInvalidRequest  = "INVALID_REQUEST"
	CodeInvalidJSON     = "INVALID_JSON"
	CodeInvalidState    = "INVALID_STATE"
	CodeInvalidConfig   = "INVALID_RENDER_CONFIG"
	CodeNotFound        = "NOT_FOUND"
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeKeyRevoked      = "KEY_REVOKED" // 401: the key was revoked; a new one is needed
	CodeKeyExpired      = "KEY_EXPIRED" // 401: the key's --expires has passed
	CodeTooLarge        = "PAYLOAD_TOO_LARGE"
	CodeUploadNotFound  = "UPLOAD_NOT_FOUND"
	CodeUploadMissing   = "UPLOAD_NOT_RECEIVED"
	CodeSlugUsed        = "SLUG_ALREADY_USED"
	CodeConflict        = "CONFLICT"
	CodeInternal        = "INTERNAL"
	CodeRateLimited     = "RATE_LIMITED"
	CodeValidationError = "VALIDATION_FAILED"
	CodeUnavailable     = "UNAVAILABLE"  // 503: a part of the farm is out for a moment; send the request again
	CodeStorageFull     = "STORAGE_FULL" // 507: the farm's disk is full
)

// Invalid is a 400 error with a message that says what to fix.
func Invalid(code, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidField is a 400 error about one field of a request body.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: CodeInvalidConfig, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// NotFound is the 404 for a thing that does not exist or is another workspace's.
func NotFound(what, id string) *Error {
	return &Error{Kind: KindNotFound, Code: CodeNotFound, Message: fmt.Sprintf("no %s with id %q in this workspace", what, id)}
}

// InvalidState is the 400 for an action the job's status forbids.
func InvalidState(action string, st Status, hint string) *Error {
	msg := fmt.Sprintf("cannot %s a job that is %s", action, st)
	if hint != "" {
		msg += "; " + hint
	}
	return &Error{Kind: KindInvalid, Code: CodeInvalidState, Message: msg}
}

// KindOf returns the kind of err, KindInternal when it carries none.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return KindInternal
}
