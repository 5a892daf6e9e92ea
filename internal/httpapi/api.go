// Package httpapi serves the Renderjuice-compatible external API v1 over
// HTTP: routing, API-key authentication, request decoding, the one mapping
// from farm errors to HTTP answers, and the OpenAPI document that describes
// all of it. It holds no job logic; everything it answers comes from a Farm.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// BasePath is where the external API lives, as Renderjuice clients expect.
const BasePath = "/api/external/v1"

// DefaultMaxBodyBytes bounds a JSON request body when Options leaves it
// unset: the largest body the API takes, a render request, is a few
// kilobytes, and files never travel through the API itself.
const DefaultMaxBodyBytes = 1 << 20

// Options are what New needs besides the farm.
type Options struct {
	// Objects serves the presigned object URLs under /objects/ (the local
	// object store's uploads and downloads, or a bucket's downloads served
	// through the farm). It sees the full request path and checks its own
	// signatures, so no API key is asked for there. Nil when clients reach
	// the objects elsewhere, such as in a bucket.
	Objects http.Handler
	// Logger receives one line per request and the details of every
	// internal error, which clients never see. Nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds JSON request bodies; zero or less means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Dashboard serves the web dashboard at / and everything under /ui/.
	// Nil serves none.
	Dashboard http.Handler
	// RateLimit bounds the POST and DELETE requests of each API key; the
	// zero value sets no limit. Each server counts on its own, so behind a
	// load balancer a key may send this much to every replica.
	RateLimit RateLimit
	// Ready checks, within its context's short deadline, that what the
	// server depends on answers (the database; on a render node the
	// bucket too): its error is an outage (package outage) or says the
	// server is stopping. /readyz answers 503 while it fails, and an
	// internal error met while it fails is answered as the outage it is.
	// Nil: always ready.
	Ready func(ctx context.Context) error
	// Answered, when set, is told of every request once it is answered:
	// its method, the route pattern that answered it ("" when none did),
	// its status and how long it took. The metrics' API latency comes
	// from it.
	Answered func(method, pattern string, status int, elapsed time.Duration)
}

type api struct {
	farm    Farm
	log     *slog.Logger
	maxBody int64
	limiter *keyLimiter // nil: no rate limit
	keys    *keyCache   // nil: every request asks the farm
	mux     *http.ServeMux
	ready   func(ctx context.Context) error // nil: always ready
	// answered is Options.Answered; nil: nobody is told.
	answered func(method, pattern string, status int, elapsed time.Duration)
}

// New returns the HTTP handler of the whole server: the external API under
// BasePath, its OpenAPI document, /healthz and /objects/. Every answer of
// the API, errors included, is JSON.
func New(f Farm, opts Options) http.Handler {
	a := &api{
		farm:    f,
		log:     opts.Logger,
		maxBody: opts.MaxBodyBytes,
		limiter: newKeyLimiter(opts.RateLimit, time.Now),
		keys:    newKeyCache(keyCacheTTL, keyCacheSize, time.Now),
		mux:     http.NewServeMux(),
		ready:   opts.Ready,

		answered: opts.Answered,
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}

	m := a.mux
	m.Handle("POST "+BasePath+"/uploads", a.authed(a.createUpload))
	m.Handle("POST "+BasePath+"/jobs", a.authed(a.createJob))
	m.Handle("GET "+BasePath+"/jobs", a.authed(a.listJobs))
	m.Handle("GET "+BasePath+"/jobs/progress", a.authed(a.runningProgress))
	m.Handle("GET "+BasePath+"/jobs/{id}", a.authed(a.getJob))
	m.Handle("DELETE "+BasePath+"/jobs/{id}", a.authed(a.deleteJob))
	m.Handle("PATCH "+BasePath+"/jobs/{id}", a.authed(a.updateJob))
	m.Handle("POST "+BasePath+"/jobs/{id}/validate", a.authed(a.validate))
	m.Handle("POST "+BasePath+"/jobs/{id}/render", a.authed(a.render))
	m.Handle("POST "+BasePath+"/jobs/{id}/cancel", a.authed(a.cancel))
	m.Handle("POST "+BasePath+"/jobs/{id}/suspend", a.authed(a.suspend))
	m.Handle("POST "+BasePath+"/jobs/{id}/resume", a.authed(a.resume))
	m.Handle("POST "+BasePath+"/jobs/{id}/retry", a.authed(a.retry))
	m.Handle("GET "+BasePath+"/jobs/{id}/progress", a.authed(a.progress))
	m.Handle("GET "+BasePath+"/jobs/{id}/downloads", a.authed(a.downloads))
	m.Handle("GET "+BasePath+"/jobs/{id}/log", a.authed(a.jobLog))
	m.Handle("GET "+BasePath+"/blender", a.authed(a.blenderVersions))
	m.Handle("GET "+BasePath+"/usage", a.authed(a.usage))
	m.Handle("POST "+BasePath+"/webhooks", a.authed(a.createWebhook))
	m.Handle("GET "+BasePath+"/webhooks", a.authed(a.listWebhooks))
	m.Handle("GET "+BasePath+"/webhooks/{id}", a.authed(a.getWebhook))
	m.Handle("DELETE "+BasePath+"/webhooks/{id}", a.authed(a.deleteWebhook))
	m.Handle("POST "+BasePath+"/webhooks/{id}/rotate-secret", a.authed(a.rotateWebhookSecret))
	m.Handle("GET "+BasePath+"/webhooks/{id}/deliveries", a.authed(a.webhookDeliveries))
	m.HandleFunc("GET "+BasePath+"/openapi.json", a.openAPI)
	m.HandleFunc("GET /healthz", a.healthz)
	m.HandleFunc("GET /readyz", a.readyz)
	if opts.Objects != nil {
		m.Handle("/objects/", opts.Objects)
	}
	if opts.Dashboard != nil {
		m.Handle("GET /{$}", opts.Dashboard)
		m.Handle("GET /ui/", opts.Dashboard)
	}

	return a.observe(http.HandlerFunc(a.route))
}

// route dispatches through the mux, but answers unknown paths and wrong
// methods itself: the mux's own answers are plain text, and a client of a
// JSON API should be able to parse every answer it gets.
func (a *api) route(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern != "" {
		// ServeHTTP, not h: only the mux's own dispatch sets the path
		// values that handlers read.
		a.mux.ServeHTTP(w, r)
		return
	}
	// The mux says "no pattern" for exactly two cases, 404 and 405; run
	// its answer into a probe to learn which, and the Allow list.
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusNotFound:
		writeProblem(w, http.StatusNotFound, farm.CodeNotFound,
			"no route "+r.Method+" "+r.URL.Path+"; the API lives under "+BasePath+" and is described at "+BasePath+"/openapi.json", "")
	case http.StatusMethodNotAllowed:
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeProblem(w, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			r.URL.Path+" does not take "+r.Method+"; it takes "+allow, "")
	default:
		h.ServeHTTP(w, r)
	}
}

// probeWriter records what a handler answers and throws the body away.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// healthz says the process answers: a liveness check, which asks
// nothing of the database, so that a replica whose database is out is not
// restarted for it (see readyz).
func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether the server can answer requests now: whether what
// it depends on answers (Options.Ready). A load balancer sends traffic
// only to replicas that are ready.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	WriteReadiness(w, r, a.ready, a.log)
}

// readyTimeout bounds a readiness check: a part that does not answer
// within it is as good as out for a request.
const readyTimeout = 2 * time.Second

// WriteReadiness answers a readiness check with ready: 200 {"status":
// "ready"}, or 503 UNAVAILABLE with Retry-After, saying which part is out
// and nothing of where it is (the details go to log). serve's API and a
// node's metrics address both answer /readyz with it.
func WriteReadiness(w http.ResponseWriter, r *http.Request, ready func(context.Context) error, log *slog.Logger) {
	if ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			log.Warn("not ready", "err", err)
			w.Header().Set("Retry-After", retryAfterSeconds())
			writeProblem(w, http.StatusServiceUnavailable, farm.CodeUnavailable, notReadyMessage(err), "")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *api) openAPI(w http.ResponseWriter, r *http.Request) {
	b, err := specJSON()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
