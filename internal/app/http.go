package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// riverUI serves River's own UI, so operators inspect the queue with the
// tool River users know, behind HTTP basic auth whose password is the
// admin token (any user name).
func riverUI(ctx context.Context, client *river.Client[*sql.Tx], token string, log *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    log.With("component", "riverui"),
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, pass, ok := r.BasicAuth()
		if !ok || !adminTokenMatches(pass, token) {
			rw.Header().Set("WWW-Authenticate", `Basic realm="renderfarm River UI"`)
			http.Error(rw, "the River UI needs the admin token as the password", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(rw, r)
	}), nil
}

// adminBearer lets a request through to h only when it carries the admin
// token as "Authorization: Bearer <admin token>", the way Prometheus sends
// a scrape's credentials.
func adminBearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !adminTokenMatches(strings.TrimSpace(given), token) {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="renderfarm metrics"`)
			http.Error(rw, `/metrics on the API address needs the admin token: send "Authorization: Bearer <admin token>", or scrape --metrics-addr`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(rw, r)
	})
}

// adminTokenMatches compares a token given with the admin token in time
// that tells nothing of either, their lengths included: it compares their
// SHA-256 sums.
func adminTokenMatches(given, token string) bool {
	g, t := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(g[:], t[:]) == 1
}

// objectOrigin is the origin of the S3 endpoint in --storage, which the
// dashboard loads frames and uploads files from; "" for local objects.
func objectOrigin(storage string) string {
	if storage == "" {
		return ""
	}
	cfg, err := objstore.ParseS3URL(storage)
	if err != nil {
		return ""
	}
	if cfg.Endpoint != "" {
		return cfg.Endpoint
	}
	return "https://" + cfg.Bucket + ".s3." + cfg.Region + ".amazonaws.com"
}

// serveMetrics serves /metrics, /healthz and /readyz (ready's answer) at
// addr, without credentials, until stop is called; an empty addr serves
// nothing. serve uses it for
// --metrics-addr (loopback by default, for a Prometheus on the same host)
// and worker for its own --metrics-addr: a render node has no API, and its
// frame counters live in its own process. An address already taken is an
// error at start, never a server that runs without the metrics it was
// asked for.
func serveMetrics(addr string, m *metrics.Metrics, ready func(context.Context) error, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w; give an address no other process listens on, or --metrics-addr \"\" to serve no metrics there", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteReadiness(w, r, ready, log)
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", listener.Addr().String())
	return func() {
		// A scrape takes milliseconds; a stop does not wait long for one.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}, nil
}

// farmMetrics makes the metrics, reading the database's numbers at each
// scrape.
func farmMetrics(st *store.Store, workerTimeout time.Duration, log *slog.Logger) *metrics.Metrics {
	m := metrics.New(func(ctx context.Context) (store.FarmStats, error) {
		return st.Stats(ctx, time.Now().Add(-workerTimeout))
	}, log)
	m.CountSick(st.SickWorkerNames, log)
	return m
}

// newLogger makes the process's logger, writing to w in format (text or
// json).
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("%w: --log-format must be text or json, not %q", ErrUsage, format)
}
