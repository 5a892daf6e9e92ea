package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/outage"
)

// Codes this package answers with that the farm has no use for.
const (
	codeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	codeForbidden        = "FORBIDDEN"
)

// errorBody is the one shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// statusOf is the single place where an error kind becomes an HTTP status.
func statusOf(k farm.Kind) int {
	switch k {
	case farm.KindInvalid:
		return http.StatusBadRequest
	case farm.KindUnauthorized:
		return http.StatusUnauthorized
	case farm.KindForbidden:
		return http.StatusForbidden
	case farm.KindNotFound:
		return http.StatusNotFound
	case farm.KindConflict:
		return http.StatusConflict
	case farm.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case farm.KindRateLimited:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// defaultCode fills in a code for a farm.Error made without one, so that
// every error answer carries a code a program can switch on.
func defaultCode(k farm.Kind) string {
	switch k {
	case farm.KindInvalid:
		return farm.CodeInvalidRequest
	case farm.KindUnauthorized:
		return farm.CodeUnauthorized
	case farm.KindForbidden:
		return codeForbidden
	case farm.KindNotFound:
		return farm.CodeNotFound
	case farm.KindConflict:
		return farm.CodeConflict
	case farm.KindTooLarge:
		return farm.CodeTooLarge
	case farm.KindRateLimited:
		return farm.CodeRateLimited
	default:
		return farm.CodeInternal
	}
}

// writeError answers err. Errors the farm classified on purpose are shown
// as they are; anything else is an internal error whose details go to the
// log only, under the request id the client is given to quote.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := farm.KindOf(err)
	status := statusOf(kind)
	if status == http.StatusInternalServerError {
		if part := a.outageOf(r, err); part != outage.None {
			a.log.Warn("request met an outage", "request_id", requestIDFrom(r.Context()), "method", r.Method, "path", r.URL.Path, "part", part, "err", err)
			writeOutage(w, part)
			return
		}
		id := requestIDFrom(r.Context())
		level := slog.LevelError
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody will read the answer and
			// nothing is wrong with the server.
			level = slog.LevelInfo
		}
		a.log.Log(r.Context(), level, "internal error",
			"request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, status, farm.CodeInternal,
			"the server failed to answer this request; if it keeps happening, report it with request id "+id, "")
		return
	}

	var fe *farm.Error
	errors.As(err, &fe) // KindOf found one, or the status would be 500
	code, msg := fe.Code, fe.Message
	if code == "" {
		code = defaultCode(kind)
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="renderfarm"`)
	case http.StatusTooManyRequests:
		// Every 429 says when to come back, so that clients can rely on
		// the header; the rate limit sets the exact wait before this.
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	writeProblem(w, status, code, msg, fe.Field)
}

// outageOf is the part of the farm whose outage err is, or explains: an
// error that is no outage by itself, met while the database (or, on a
// render node, the bucket) does not answer, is taken for that outage
// rather than for a fault of the server's.
func (a *api) outageOf(r *http.Request, err error) outage.Part {
	if part := outage.Of(err); part != outage.None || a.ready == nil || errors.Is(err, context.Canceled) {
		return part
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), readyTimeout)
	defer cancel()
	if rerr := a.ready(ctx); rerr != nil {
		return outage.Of(rerr)
	}
	return outage.None
}

// writeOutage answers a request that met an outage of part: 503
// UNAVAILABLE with Retry-After, saying the outage is temporary, or, for a
// full disk, 507 STORAGE_FULL. The message names the part, never where
// it is.
func writeOutage(w http.ResponseWriter, part outage.Part) {
	if part == outage.Disk {
		writeProblem(w, http.StatusInsufficientStorage, farm.CodeStorageFull,
			"the farm is out of disk space, so the request was not carried out; try again later, or ask the farm's operator to free space", "")
		return
	}
	w.Header().Set("Retry-After", retryAfterSeconds())
	writeProblem(w, http.StatusServiceUnavailable, farm.CodeUnavailable,
		outage.Describe(part)+" is not answering; this is temporary: send the request again in a few seconds", "")
}

// notReadyMessage says why the server is not ready, naming the part that
// is out, never where it is.
func notReadyMessage(err error) string {
	if errors.Is(err, ErrStopping) {
		return "the server is stopping; send requests to another replica"
	}
	part := outage.Of(err)
	if part == outage.None {
		part = outage.Database
	}
	return outage.Describe(part) + " is not answering; this is temporary"
}

// ErrStopping is the readiness error of a server that is stopping: it
// finishes what it was doing and takes nothing new.
var ErrStopping = errors.New("the server is stopping")

func retryAfterSeconds() string {
	return strconv.Itoa(int(outage.RetryAfter / time.Second))
}

// writeProblem writes an error answer in the API's one error shape.
func writeProblem(w http.ResponseWriter, status int, code, message, field string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message, Field: field}})
}

// writeJSON encodes v before writing anything, so that a value that cannot
// be encoded never leaves a half-written answer behind; the caller turns the
// error into a 500 instead.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// URLs with query strings are the API's bread and butter; escaping
	// their '&' as \u0026 is valid but makes them unreadable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	// A failed write means the client is gone; there is no one to tell.
	_, _ = w.Write(buf.Bytes())
	return nil
}

// writeNoContent answers 204: no body, so no Content-Type either.
func writeNoContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}
