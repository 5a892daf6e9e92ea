package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes the server puts in [APIError.Code]. Programs should branch on
// these (or on the status code) rather than on messages, which are written
// for people and may change.
const (
	CodeInvalidRequest  = "INVALID_REQUEST"       // the request is malformed
	CodeInvalidJSON     = "INVALID_JSON"          // the body is not the JSON expected
	CodeInvalidState    = "INVALID_STATE"         // the job's status forbids the action
	CodeInvalidConfig   = "INVALID_RENDER_CONFIG" // a render setting cannot be honoured; see Field
	CodeNotFound        = "NOT_FOUND"             // no such job, or another workspace's
	CodeUnauthorized    = "UNAUTHORIZED"          // missing or unknown API key
	CodeTooLarge        = "PAYLOAD_TOO_LARGE"     // the upload or body is over the limit
	CodeUploadNotFound  = "UPLOAD_NOT_FOUND"      // the slug names no upload
	CodeUploadMissing   = "UPLOAD_NOT_RECEIVED"   // the slug's file never arrived
	CodeSlugUsed        = "SLUG_ALREADY_USED"     // a slug makes at most one job
	CodeConflict        = "CONFLICT"              // a concurrent change won; retry
	CodeInternal        = "INTERNAL"              // the server failed; details are in its logs
	CodeRateLimited     = "RATE_LIMITED"          // too many requests; slow down
	CodeValidationError = "VALIDATION_FAILED"     // the file could not be validated
	CodeUnavailable     = "UNAVAILABLE"           // a part of the farm is out for a moment; send the request again
	CodeStorageFull     = "STORAGE_FULL"          // the farm's disk is full

	// CodeStorageQuotaExceeded: the workspace's files take its storage
	// quota, so the upload was refused; the message says the quota and
	// the use.
	CodeStorageQuotaExceeded = "STORAGE_QUOTA_EXCEEDED"
)

// APIError is an error answer of the server: the HTTP status, and the
// {"error": {"code", "message", "field"}} body when the server sent one.
// Answers that are not the server's JSON (a proxy's HTML page, a storage
// service's XML) keep Code empty and carry the start of the body in Message,
// so that the reason is still visible.
type APIError struct {
	// StatusCode is the HTTP status, such as 400 or 404.
	StatusCode int
	// Code is the stable, machine-readable reason, one of the Code constants.
	Code string
	// Message says, for a person, what went wrong and what to do about it.
	Message string
	// Field is the request field the error is about, when there is one, as
	// a path in the request body such as "requestedRenderConfig.frameRanges".
	Field string
	// RetryAfter is how long the server asked the client to wait before
	// sending the request again (its Retry-After header, in seconds), on a
	// 429 [CodeRateLimited] above all; zero when it did not say.
	RetryAfter time.Duration
}

// Error reads like "400 INVALID_STATE: cannot validate a job that is validated".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteString(" " + text)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	// The server usually names the field in its message already; saying it
	// twice would only add noise.
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		b.WriteString(" (field " + e.Field + ")")
	}
	return b.String()
}

// IsNotFound reports whether err is the server saying that a job or upload
// does not exist. The server answers the same for another workspace's ids,
// so this also means "not visible with this API key".
func IsNotFound(err error) bool {
	return hasStatus(err, http.StatusNotFound)
}

// IsUnauthorized reports whether the server refused the API key, which no
// retry will fix.
func IsUnauthorized(err error) bool {
	return hasStatus(err, http.StatusUnauthorized)
}

// IsRateLimited reports whether the server refused a request because the
// API key sent too many; [APIError.RetryAfter] says when to send it again.
// The client already retries such a request a few times (see
// [WithRateLimitRetries]), so seeing this means the farm stayed busy.
func IsRateLimited(err error) bool {
	return hasStatus(err, http.StatusTooManyRequests)
}

// IsUnavailable reports whether the server said a part of the farm (its
// database, its file store) does not answer for the moment: 503, with
// [APIError.RetryAfter] saying when to send the request again. [Client.Wait]
// waits such answers out by itself.
func IsUnavailable(err error) bool {
	return hasStatus(err, http.StatusServiceUnavailable)
}

// IsInvalidState reports whether an action was refused because of the job's
// status, such as validating a job twice or canceling a finished one. A
// pipeline that retries may treat it as "already done".
func IsInvalidState(err error) bool {
	return HasCode(err, CodeInvalidState)
}

// HasCode reports whether err is an [*APIError] with the given code, for
// codes that have no helper of their own.
func HasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == status
}

// readAPIError makes an *APIError of a non-2xx answer, preferring the
// server's JSON error and falling back to the body's text.
func readAPIError(resp *http.Response) *APIError {
	ae := &APIError{StatusCode: resp.StatusCode}
	ae.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))

	var wire struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error != nil && (wire.Error.Code != "" || wire.Error.Message != "") {
		ae.Code = wire.Error.Code
		ae.Message = wire.Error.Message
		ae.Field = wire.Error.Field
		return ae
	}

	// Not our JSON: keep a short, single-line start of the body.
	text := strings.Join(strings.Fields(string(body)), " ")
	const maxText = 300
	if r := []rune(text); len(r) > maxText {
		text = string(r[:maxText]) + "…"
	}
	ae.Message = text
	return ae
}

// retryAfter reads a Retry-After header, which is either whole seconds or
// an HTTP date; zero when there is none or it has passed.
func retryAfter(header string, now time.Time) time.Duration {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0
	}
	if secs, err := strconv.Atoi(header); err == nil {
		return max(0, time.Duration(secs)*time.Second)
	}
	if at, err := http.ParseTime(header); err == nil {
		return max(0, at.Sub(now))
	}
	return 0
}
