package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

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

	// maxHeaderBytes bounds a request's line and headers. An API request
	// carries a key and a few standard headers, and an object URL's
	// signature is in a query of a few hundred bytes, so 64 KiB is far
	// more than any client sends; Go's default, 1 MiB, let each of the
	// --max-connections connections make the server hold a megabyte. Go
	// answers a request over it 431 itself, before any handler.
	maxHeaderBytes = 64 << 10

	// makeRoomAfter is how long a connection must have waited for a
	// request before it may be closed to make room at the connection cap:
	// a client sends its request as soon as it connects, so one silent for
	// a second is not a request on its way.
	makeRoomAfter = time.Second

	// capRecheck is how often a connection waiting at the cap looks again
	// for one that may be closed to make room.
	capRecheck = 100 * time.Millisecond
)

// httpLimits are the limits of serve's HTTP server.
type httpLimits struct {
	// header, apiBody and apiWrite are headerTimeout, apiBodyTimeout and
	// apiWriteTimeout.
	header, apiBody, apiWrite time.Duration
	// keepAliveIdle closes a kept-alive connection that sends no next
	// request for this long (--idle-timeout).
	keepAliveIdle time.Duration
	// maxConnections caps the connections open at once
	// (--max-connections; see connLimiter).
	maxConnections int
	// headerBytes is maxHeaderBytes.
	headerBytes int
}

// serveLimits are the limits of serve's HTTP server, with the values the
// flags give.
func serveLimits(keepAliveIdle time.Duration, maxConnections int) httpLimits {
	return httpLimits{header: headerTimeout, apiBody: apiBodyTimeout, apiWrite: apiWriteTimeout,
		keepAliveIdle: keepAliveIdle, maxConnections: maxConnections, headerBytes: maxHeaderBytes}
}

// newHTTPServer is serve's server, and the listener to serve it on: l with
// the cap on open connections. It sets no ReadTimeout or WriteTimeout,
// which would cut an upload or a download of any length: the object URLs
// keep sliding deadlines of their own (objstore's Handler, with
// --upload-idle-timeout), and every other request gets boundExchanges's.
func newHTTPServer(h http.Handler, l net.Listener, limits httpLimits) (*http.Server, net.Listener) {
	limited := newConnLimiter(l, limits.maxConnections)
	return &http.Server{
		Handler:           boundExchanges(h, limits),
		ReadHeaderTimeout: limits.header,
		MaxHeaderBytes:    limits.headerBytes,
		IdleTimeout:       limits.keepAliveIdle,
		ConnState:         limited.ConnState,
	}, limited
}

// connLimiter lets at most max connections be open at once, so that the
// process keeps the rest of its file descriptors for its database,
// objects, Blender and ffmpeg whatever clients do. At the cap it makes room
// by closing the connection that has waited longest for a request, if it
// has waited makeRoomAfter: one that has sent nothing since it was opened,
// or a kept-alive one between requests (a client that needs it again opens
// another). So connections that clients open and leave silent, or idle,
// keep new clients out for a second at most. While every connection is
// busy with a request, the new one waits. Its ConnState is the server's
// http.Server.ConnState, which tells it which connections wait for a
// request.
type connLimiter struct {
	net.Listener
	slots chan struct{} // one token per open connection

	mu      sync.Mutex
	waiting map[net.Conn]time.Time // connections waiting for a request, since when
}

func newConnLimiter(l net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: l, slots: make(chan struct{}, max), waiting: map[net.Conn]time.Time{}}
}

// Accept takes the next connection, then a slot for it: one more file
// descriptor than the cap is the most it holds.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		if l.closeLongestWaiting() {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		case <-time.After(capRecheck):
		}
	}
}

// ConnState keeps track of the connections waiting for a request: new
// ones that have sent nothing yet, and kept-alive ones between requests.
func (l *connLimiter) ConnState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateNew || state == http.StateIdle {
		l.waiting[c] = time.Now()
	} else {
		delete(l.waiting, c)
	}
}

// closeLongestWaiting closes the connection that has waited longest for a
// request, if it has waited makeRoomAfter, and says whether it did.
func (l *connLimiter) closeLongestWaiting() bool {
	l.mu.Lock()
	var oldest net.Conn
	since := time.Now().Add(-makeRoomAfter)
	for c, t := range l.waiting {
		if !t.After(since) {
			oldest, since = c, t
		}
	}
	delete(l.waiting, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
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
// read its body in (apiBody) and one to write its answer in (apiWrite,
// from the answer's first byte). The read deadline is lifted once the body
// has been read, so that a slow database is not mistaken for a slow
// client.
func boundExchanges(next http.Handler, limits httpLimits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, objstore.ObjectsPath) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(time.Now().Add(limits.apiBody))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		// Whatever deadline a previous request on this connection left
		// is not this one's.
		_ = rc.SetWriteDeadline(time.Time{})
		bw := &deadlineWriter{ResponseWriter: w, rc: rc, timeout: limits.apiWrite}
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
	timeout time.Duration
	started bool
}

func (d *deadlineWriter) start() {
	if !d.started {
		d.started = true
		_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
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
