package objstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"syscall"
	"time"
)

// Error codes of Handler's JSON answers, in the API's error shape so a
// client handles both the same way.
const (
	codeInvalidSignature = "INVALID_SIGNATURE"
	codeURLExpired       = "URL_EXPIRED"
	codePayloadTooLarge  = "PAYLOAD_TOO_LARGE"
	codeNotFound         = "NOT_FOUND"
	codeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	codeInvalidKey       = "INVALID_KEY"
	codeIncompleteBody   = "INCOMPLETE_BODY"
	codeStorageFull      = "STORAGE_FULL"
	codeInternal         = "INTERNAL"
	codeUnavailable      = "UNAVAILABLE"
)

// PutRefusal is what a LocalConfig.AcceptPut hook answers to refuse an
// upload whose signature is good: Handler answers Status with the JSON
// error {Code, Message} and stores nothing. The message is for the person
// uploading, so it says what to do instead.
type PutRefusal struct {
	Status  int
	Code    string
	Message string
}

func (r *PutRefusal) Error() string { return r.Code + ": " + r.Message }

// errAcceptPutFailed wraps a failure of the AcceptPut hook itself (the
// database is down, say), which is no answer about the upload.
type errAcceptPutFailed struct{ err error }

func (e errAcceptPutFailed) Error() string {
	return "checking whether the upload is still open: " + e.err.Error()
}
func (e errAcceptPutFailed) Unwrap() error { return e.err }

// Handler serves the store's presigned URLs: PUT for upload URLs, GET and
// HEAD for download URLs. It expects the full request path, so mount it
// without stripping the prefix:
//
//	mux.Handle(objstore.ObjectsPath, local.Handler())
//
// It needs no API key and must not sit behind the API's auth: the signature
// in the URL is the authorization. Errors are JSON in the API's shape,
// {"error": {"code": "URL_EXPIRED", "message": "..."}}, with 403 for a bad
// or expired signature, 413 for a body over MaxUploadBytes, 404 for a
// missing object, and what AcceptPut says for an upload that is closed.
//
// A transfer may be slow but not stalled: a PUT whose body sends nothing,
// or a GET whose client takes nothing, for TransferIdleTimeout is cut; each
// read or write that moves bytes extends the deadline. The server that
// mounts Handler should therefore set no ReadTimeout or WriteTimeout of its
// own for these URLs (they would cut long transfers), only
// ReadHeaderTimeout and IdleTimeout.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(l.serveHTTP)
}

func (l *Local) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Whatever the request, it moves bytes now or is cut: the deadlines
	// a previous request on this connection left are replaced. Only a
	// PUT has a body to read; during any other request the server reads
	// in the background to notice a closed connection, and would take a
	// read deadline passing for one, ending a long download's context.
	t := newTransfer(w, l.idle)
	if r.Method == http.MethodPut {
		t.extendRead()
	} else {
		_ = t.rc.SetReadDeadline(time.Time{})
	}
	t.extendWrite()
	key, ok := strings.CutPrefix(r.URL.Path, ObjectsPath)
	if !ok {
		writeError(w, r, http.StatusNotFound, codeNotFound,
			"object URLs start with "+ObjectsPath+"; use the URL exactly as the API returned it")
		return
	}
	var method string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		method = http.MethodGet
	case http.MethodPut:
		method = http.MethodPut
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed here: send the file with PUT to an upload URL, or download with GET from a download URL", r.Method))
		return
	}
	if err := l.checkKey(key); err != nil {
		writeError(w, r, http.StatusBadRequest, codeInvalidKey, err.Error()+"; use the URL exactly as the API returned it")
		return
	}
	if expiresAt, err := l.urls.verify(method, key, r.URL.Query()); err != nil {
		writeSignatureError(w, r, method, expiresAt, err)
		return
	}
	if method == http.MethodPut {
		l.servePut(w, r, key, t)
	} else {
		l.serveGet(t, r, key)
	}
}

// acceptsPut asks the AcceptPut hook whether key still takes a PUT;
// store is nil until the whole body is on disk (see LocalConfig.AcceptPut).
func (l *Local) acceptsPut(ctx context.Context, key string, size int64, store func() error) error {
	if l.acceptPut == nil {
		return nil
	}
	var storeErr error
	if store != nil {
		move := store
		store = func() error {
			storeErr = move()
			return storeErr
		}
	}
	err := l.acceptPut(ctx, key, size, store)
	if _, refused := errors.AsType[*PutRefusal](err); err == nil || refused {
		return err
	}
	if storeErr != nil && errors.Is(err, storeErr) {
		// The hook accepted the file, and storing it failed: that is
		// what to answer (a full disk, say), not the hook.
		return storeErr
	}
	return errAcceptPutFailed{err}
}

func writeSignatureError(w http.ResponseWriter, r *http.Request, method string, expiresAt time.Time, err error) {
	if errors.Is(err, errExpired) {
		at := expiresAt.Format(time.RFC3339)
		if method == http.MethodPut {
			writeError(w, r, http.StatusForbidden, codeURLExpired,
				"this upload URL expired at "+at+"; request a new upload URL (POST /uploads) and send the file again")
		} else {
			writeError(w, r, http.StatusForbidden, codeURLExpired,
				"this download URL expired at "+at+"; request fresh download URLs from the API and try again")
		}
		return
	}
	msg := "the URL's signature does not match this request; use the URL exactly as the API returned it " +
		"(PUT for an upload URL, GET for a download URL) or request a new one"
	if errors.Is(err, errNoSignature) {
		msg = "this URL carries no signature (expires and sig parameters); objects are only reachable through the presigned URLs the API returns"
	}
	writeError(w, r, http.StatusForbidden, codeInvalidSignature, msg)
}

func (l *Local) servePut(w http.ResponseWriter, r *http.Request, key string, t *transfer) {
	// Refuse a declared oversize body before reading a byte of it; curl's
	// "Expect: 100-continue" then never sends the body at all.
	if r.ContentLength > l.maxUpload {
		writeError(w, r, http.StatusRequestEntityTooLarge, codePayloadTooLarge,
			fmt.Sprintf("the file is %s, over the upload limit of %s; upload a smaller file or ask the farm's operator to raise the limit",
				formatSize(r.ContentLength), formatSize(l.maxUpload)))
		return
	}
	// An upload that was used for a job, or deleted, takes nothing more,
	// though its URL's signature is still good. Asked again just before
	// the file is stored, so that a job made while the body streamed in
	// wins.
	if err := l.acceptsPut(r.Context(), key, r.ContentLength, nil); err != nil {
		l.writePutError(w, r, key, err)
		return
	}
	// A chunked body has no declared length, so the limit is enforced while
	// streaming; write removes the partial file when the limit trips.
	body := &readErrRecorder{r: ctxReader{r.Context(), t.reader(http.MaxBytesReader(w, r.Body, l.maxUpload))}}
	_, err := l.write(key, body, func(n int64, store func() error) error { return l.acceptsPut(r.Context(), key, n, store) })
	// However long the body took, the answer has its own time to go out.
	t.extendWrite()
	if err != nil {
		l.tellPutFailed(r.Context(), key)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(body.err, &tooLarge):
			writeError(w, r, http.StatusRequestEntityTooLarge, codePayloadTooLarge,
				fmt.Sprintf("the file grew past the upload limit of %s; upload a smaller file or ask the farm's operator to raise the limit",
					formatSize(l.maxUpload)))
		case body.err != nil:
			// Most often the client went away, or stalled past the idle
			// timeout; the answer is for the rare client still listening.
			writeError(w, r, http.StatusBadRequest, codeIncompleteBody,
				fmt.Sprintf("the upload ended, or sent nothing for %v, before the whole file arrived, so nothing was stored; send the file again", l.idle))
		default:
			l.writePutError(w, r, key, err)
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

// tellPutFailed tells the PutFailed hook that a PUT let in stored
// nothing, for it to set right what it recorded as the PUT began.
func (l *Local) tellPutFailed(ctx context.Context, key string) {
	if l.putFailed == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	err := l.putFailed(ctx, key, func() (int64, error) {
		info, err := l.Stat(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return 0, nil
		}
		return info.Size, err
	})
	if err != nil {
		l.log.Warn("objstore: could not set right what was recorded of an upload that stored nothing", "key", key, "err", err)
	}
}

// writePutError answers a PUT that failed for a reason of the farm's:
// the upload is closed, the disk is full, or something broke.
func (l *Local) writePutError(w http.ResponseWriter, r *http.Request, key string, err error) {
	var refusal *PutRefusal
	var hookFailed errAcceptPutFailed
	switch {
	case errors.As(err, &refusal):
		writeError(w, r, refusal.Status, refusal.Code, refusal.Message)
	case errors.As(err, &hookFailed):
		l.log.Error("objstore: upload refused", "key", key, "err", err)
		// The farm's database did not answer: a moment later it may.
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, codeUnavailable,
			"the farm could not check that this upload is still open, so nothing was stored; try again in a moment")
	case errors.Is(err, syscall.ENOSPC):
		l.log.Error("objstore: upload failed", "key", key, "err", err)
		writeError(w, r, http.StatusInsufficientStorage, codeStorageFull,
			"the farm is out of disk space, so nothing was stored; try again later or ask the farm's operator to free space")
	default:
		l.log.Error("objstore: upload failed", "key", key, "err", err)
		writeError(w, r, http.StatusInternalServerError, codeInternal,
			"the file could not be stored; try again later")
	}
}

func (l *Local) serveGet(t *transfer, r *http.Request, key string) {
	serveGet(t, r, key, l.Open, l.served, l.log)
}

// serveGet answers the GET or HEAD of a download URL whose signature is
// good: the object open opens, with the headers a browser needs to treat
// untrusted bytes safely, and HEAD, Range and conditional requests as
// http.ServeContent answers them. What the answer's body sent is then told
// to served, if set.
func serveGet(t *transfer, r *http.Request, key string, open func(context.Context, string) (io.ReadSeekCloser, Info, error),
	served func(ctx context.Context, key string, bytes int64) error, log *slog.Logger) {
	// Every write of the answer extends the write deadline, so a download
	// may be slow but a client that stops reading is cut.
	var w http.ResponseWriter = t
	f, info, err := open(r.Context(), key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			writeError(w, r, http.StatusNotFound, codeNotFound,
				"this object no longer exists; it may have been deleted, so check the job's current downloads")
			return
		}
		log.Error("objstore: download failed", "key", key, "err", err)
		writeError(w, r, http.StatusInternalServerError, codeInternal, "the file could not be read; try again later")
		return
	}
	defer f.Close()

	h := w.Header()
	// The type comes from the key alone and browsers must not sniff or run
	// anything: uploads are untrusted, and this answer comes from the same
	// origin as the dashboard.
	h.Set("Content-Type", contentType(key))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", "private")
	if info.ETag != "" {
		// A resumed download (If-Range) then goes on only with the very
		// version it began, which a modification time to the second
		// cannot promise.
		h.Set("ETag", `"`+info.ETag+`"`)
	}
	if name := r.URL.Query().Get(paramName); name != "" {
		if cd := mime.FormatMediaType("attachment", map[string]string{"filename": name}); cd != "" {
			h.Set("Content-Disposition", cd)
		}
	}
	// ServeContent answers HEAD, Range and conditional requests.
	if served == nil {
		http.ServeContent(w, r, "", info.ModTime, f)
		return
	}
	counted := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	http.ServeContent(counted, r, "", info.ModTime, f)
	// Only the object's bytes count, not an error's text (a range that
	// is not in the object: 416).
	if ok := counted.status == http.StatusOK || counted.status == http.StatusPartialContent; ok && counted.n > 0 {
		if err := served(context.WithoutCancel(r.Context()), key, counted.n); err != nil {
			log.Warn("objstore: could not count a download", "key", key, "bytes", counted.n, "err", err)
		}
	}
}

// countingWriter counts the bytes of an answer's body, and keeps its
// status.
type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (c *countingWriter) WriteHeader(status int) {
	c.status = status
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func contentType(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	json.NewEncoder(w).Encode(errorBody{errorDetail{Code: code, Message: message}})
}

// readErrRecorder remembers the error of the reading side of a copy, so a
// failed upload can be blamed on the client (body cut short, over the
// limit) or on the server (disk full) accurately.
type readErrRecorder struct {
	r   io.Reader
	err error
}

func (e *readErrRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// transfer keeps the deadlines of one presigned request sliding: each read
// of the body that brings bytes, and each write of the answer, moves the
// deadline to idle from now. Deadlines are set through
// http.ResponseController; where the writer has none (a test's recorder),
// nothing is cut.
type transfer struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func newTransfer(w http.ResponseWriter, idle time.Duration) *transfer {
	return &transfer{ResponseWriter: w, rc: http.NewResponseController(w), idle: idle}
}

func (t *transfer) extendRead()  { _ = t.rc.SetReadDeadline(time.Now().Add(t.idle)) }
func (t *transfer) extendWrite() { _ = t.rc.SetWriteDeadline(time.Now().Add(t.idle)) }

// Write implements http.ResponseWriter, extending the write deadline first.
func (t *transfer) Write(p []byte) (int, error) {
	t.extendWrite()
	return t.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (t *transfer) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// reader returns body with the sliding read deadline: each read that
// brings bytes extends it. Once the body has ended the deadline is lifted,
// so that storing a large file (a sync of gigabytes) is not mistaken for
// a stalled client; the answer then has its own write deadline.
func (t *transfer) reader(body io.Reader) io.Reader {
	return readFunc(func(p []byte) (int, error) {
		n, err := body.Read(p)
		switch {
		case err == io.EOF:
			_ = t.rc.SetReadDeadline(time.Time{})
		case n > 0:
			t.extendRead()
		}
		return n, err
	})
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// formatSize renders a byte count the way people set limits: "5 GiB" when
// exact, else bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
