package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

type requestIDKey struct{}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// acceptableRequestID reports whether a request id set by a proxy in front
// of the server can be reused, which ties its logs to ours. Anything long or
// odd is replaced rather than written into our logs and headers.
func acceptableRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// observe gives every request an id, logs it once it is answered, and turns
// a panic into a 500 so that one bad request cannot take the server down.
func (a *api) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !acceptableRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		rec := &statusRecorder{ResponseWriter: w}

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic while answering a request",
					"request_id", id, "method", r.Method, "path", r.URL.Path,
					"panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					a.writeError(rec, r, errPanic)
				}
			}
			// Only the path is logged: the query of an object URL is its
			// signature, which must not end up in logs.
			a.log.LogAttrs(r.Context(), logLevelOf(r, rec.statusOrOK()), "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.statusOrOK()),
				slog.Int64("bytes", rec.written),
				slog.Duration("duration", time.Since(start)))
			if a.answered != nil {
				// The router set r.Pattern on this request as it routed it.
				a.answered(r.Method, r.Pattern, rec.statusOrOK(), time.Since(start))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// logLevelOf is the level a request is logged at once answered: info,
// but for a health or readiness probe that passed, which an orchestrator
// sends every few seconds to every replica (Kubernetes' probes, a load
// balancer's checks) and which would otherwise be most of the log. A
// probe that fails stays at info: it says why the replica is taken out
// of service.
func logLevelOf(r *http.Request, status int) slog.Level {
	if (r.URL.Path == "/healthz" || r.URL.Path == "/readyz") && status < 300 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// errPanic carries no farm kind, so it is answered as an internal error.
var errPanic = panicError{}

type panicError struct{}

func (panicError) Error() string { return "handler panicked" }

// statusRecorder remembers the status and size of an answer for the log.
// It passes Flush and ReadFrom through, because the object handler streams
// large files and should keep the server's fast paths for that.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	written int64
}

func (s *statusRecorder) WriteHeader(code int) {
	// 1xx answers are interim; the final status comes after them.
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.written += int64(n)
	return n, err
}

func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	// io.Copy uses the underlying writer's ReadFrom (sendfile) if it has one.
	n, err := io.Copy(s.ResponseWriter, src)
	s.written += n
	return n, err
}

func (s *statusRecorder) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer, for
// deadlines and the like.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) statusOrOK() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

type principalKey struct{}

// PrincipalFromContext returns who an API request acts for. Handlers of
// this package get it as an argument; the context carries it for code they
// call that has only the context, such as logging and tracing.
func PrincipalFromContext(ctx context.Context) (farm.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(farm.Principal)
	return p, ok
}

// handler is an API handler: it writes the answer itself when it succeeds,
// and returns an error, without writing anything, when it does not.
type handler func(w http.ResponseWriter, r *http.Request, p farm.Principal) error

// authed checks the API key of a request and the key's rate limit before h
// runs, and answers every error h returns through the one error path.
func (a *api) authed(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		if err == nil {
			err = a.checkRate(w, r, p)
		}
		if err == nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
			err = h(w, r, p)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *api) authenticate(r *http.Request) (farm.Principal, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return farm.Principal{}, unauthorized(`no API key; send it as the header "Authorization: Bearer <api key>"`)
	}
	scheme, key, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Name the scheme only: the rest may be a credential.
		return farm.Principal{}, unauthorized(`the Authorization header uses the scheme "` + truncate(scheme, 20) + `"; send "Authorization: Bearer <api key>"`)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return farm.Principal{}, unauthorized(`the Authorization header has no API key after "Bearer"; send "Authorization: Bearer <api key>"`)
	}
	if a.keys == nil {
		return a.farm.Authenticate(r.Context(), key)
	}
	hash := sha256.Sum256([]byte(key))
	if p, ok := a.keys.get(hash); ok {
		return p, nil
	}
	asked := a.keys.now()
	p, err := a.farm.Authenticate(r.Context(), key)
	if err == nil {
		a.keys.put(hash, p, asked)
	}
	return p, err
}

func unauthorized(msg string) *farm.Error {
	return &farm.Error{Kind: farm.KindUnauthorized, Code: farm.CodeUnauthorized, Message: msg}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
