package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/renderfarm/renderfarm/internal/objstore"
)

// How long a connection of serve may take over each part of an exchange.
// A connection that is slower than these is closed, so that clients that
// open connections and send nothing, or stall halfway, cannot pile up and
// take every file descriptor of the process.
const (
	// headerTimeout bounds reading a request's line and headers, which
	// any client sends in one go.
	headerTimeout = 10 * time.Second

	// apiBodyTimeout bounds reading the body of a request other than an
	// upload: JSON of at most 1 MiB, which takes 30 s at 35 KB/s.
	apiBodyTimeout = 30 * time.Second

	// apiWriteTimeout bounds writing the answer of a request other than a
	// download, from its first byte: the largest (a page of jobs with
	// their analyses, the dashboard's scripts) are a few hundred KB.
	apiWriteTimeout = time.Minute
)

// httpLimits are the limits of serve's HTTP server that flags set.
type httpLimits struct {
	// keepAliveIdle closes a kept-alive connection that sends no next
	// request for this long (--idle-timeout).
	keepAliveIdle time.Duration
	// maxConnections caps the connections open at once; more wait to be
	// accepted (--max-connections; 0 picks defaultMaxConnections).
	maxConnections int
}

// newHTTPServer is serve's server. It sets no ReadTimeout or WriteTimeout,
// which would cut an upload or a download of any length: the object URLs
// keep sliding deadlines of their own (objstore's Handler, with
// --upload-idle-timeout), and every other request gets boundExchanges's.
func newHTTPServer(h http.Handler, limits httpLimits) *http.Server {
	return &http.Server{
		Handler:           boundExchanges(h),
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       limits.keepAliveIdle,
	}
}

// limitConnections lets at most n connections be open at once: the next
// one waits in the listen queue until one closes. The process keeps the
// rest of its file descriptors for its database, objects, Blender and
// ffmpeg, whatever clients do.
func limitConnections(l net.Listener, n int) net.Listener {
	return netutil.LimitListener(l, n)
}

// defaultMaxConnections is half of the files the process may open: the
// other half is for the database, the objects being read and written, and
// the pipes of Blender and ffmpeg. At the common limit of 1,024 that is
// 512 connections.
func defaultMaxConnections() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	return int(min(max(rl.Cur/2, 16), 1<<20)), nil
}

// boundExchanges gives every request but the object URLs' a deadline to
// read its body in (apiBodyTimeout) and one to write its answer in
// (apiWriteTimeout, from the answer's first byte). Deadlines are lifted
// once the body has been read, so that a slow database is not mistaken for
// a slow client.
func boundExchanges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, objstore.ObjectsPath) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(time.Now().Add(apiBodyTimeout))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		// Whatever deadline a previous request on this connection left
		// is not this one's.
		_ = rc.SetWriteDeadline(time.Time{})
		bw := &deadlineWriter{ResponseWriter: w, rc: rc}
		// The server writes what the handler left buffered after it
		// returns: that too has its time.
		defer bw.start()
		next.ServeHTTP(bw, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadlineWriter sets the write deadline when the answer starts.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (d *deadlineWriter) start() {
	if !d.started {
		d.started = true
		_ = d.rc.SetWriteDeadline(time.Now().Add(apiWriteTimeout))
	}
}

func (d *deadlineWriter) WriteHeader(code int) {
	d.start()
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.start()
	return d.ResponseWriter.Write(p)
}

// Flush passes a flush on: River's UI and the dashboard may stream.
func (d *deadlineWriter) Flush() {
	d.start()
	_ = d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
