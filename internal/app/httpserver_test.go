package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testLimits are serve's limits scaled down so that the tests of what
// they cut run in a second; only the one a test is about matters.
var testLimits = httpLimits{
	header: 5 * time.Second, apiBody: 300 * time.Millisecond, apiWrite: 300 * time.Millisecond,
	keepAliveIdle: time.Minute, maxConnections: 100, headerBytes: maxHeaderBytes,
}

// startServer serves h as serve does, with limits, on a free port of
// loopback, and answers its address.
func startServer(t *testing.T, h http.Handler, limits httpLimits) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, limited := newHTTPServer(h, l, limits)
	go srv.Serve(limited)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// dialServer opens a connection whose deadline fails a test that waits on
// a server that never answers.
func dialServer(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// get sends GET path on conn and answers the status.
func get(t *testing.T, conn net.Conn, r *bufio.Reader, path string) int {
	t.Helper()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: farm\r\n\r\n", path)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// TestHeadersOverTheLimitAreRefused: a request whose headers pass 64 KiB
// is answered 431 and its connection closed, without reaching a handler;
// one of 32 KiB, already far more than a client sends, is served.
func TestHeadersOverTheLimitAreRefused(t *testing.T) {
	if got := serveLimits(time.Minute, 100).headerBytes; got != 64<<10 {
		t.Errorf("serve's header limit is %d bytes, want 64 KiB as docs/security.md says", got)
	}
	var reached atomic.Int32
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		ok(w, r)
	}), testLimits)
	for _, tt := range []struct {
		headerBytes int
		want        int
	}{
		{32 << 10, http.StatusOK},
		{128 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		conn := dialServer(t, addr)
		fmt.Fprintf(conn, "GET /api/external/v1/jobs HTTP/1.1\r\nHost: farm\r\nX-Padding: %s\r\n\r\n", strings.Repeat("a", tt.headerBytes))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("a request with %d bytes of headers: %v", tt.headerBytes, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("a request with %d bytes of headers: %d, want %d", tt.headerBytes, resp.StatusCode, tt.want)
		}
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("%d requests reached the handler, want the one within the limit", n)
	}
}

// TestSlowAPIBodyIsCut: an API request whose body stalls is cut after the
// body's time, and the handler learns that its body is incomplete.
func TestSlowAPIBodyIsCut(t *testing.T) {
	readErr := make(chan error, 1)
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), testLimits)
	conn := dialServer(t, addr)
	fmt.Fprintf(conn, "POST /api/external/v1/jobs HTTP/1.1\r\nHost: farm\r\nContent-Length: 100\r\n\r\n{\"slug\":")
	sent := time.Now()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the handler read the whole of a body that was never sent")
		}
		if took := time.Since(sent); took < testLimits.apiBody-50*time.Millisecond {
			t.Errorf("the body was cut after %v, before its time of %v", took, testLimits.apiBody)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled API body was still being read after 10 s")
	}
}

// TestSlowAPIHandlerIsNotCut: once its body has arrived, a request may
// take longer than the body's time (a slow database): its context is not
// canceled and its answer goes out.
func TestSlowAPIHandlerIsNotCut(t *testing.T) {
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(3 * testLimits.apiBody):
			io.WriteString(w, "done")
		case <-r.Context().Done():
			// The answer cannot reach the client any more; the test
			// sees no 200.
		}
	}), testLimits)
	conn := dialServer(t, addr)
	body := `{"slug":"s"}`
	fmt.Fprintf(conn, "POST /api/external/v1/jobs HTTP/1.1\r\nHost: farm\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer from a slow handler: %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != "done" {
		t.Errorf("slow handler answered %d %q, want 200 done", resp.StatusCode, b)
	}
}

// TestUnreadAPIAnswerIsCut: a client that asks and then reads nothing of
// a large answer holds the handler only for the answer's time.
func TestUnreadAPIAnswerIsCut(t *testing.T) {
	writeErr := make(chan error, 1)
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		for range 64 { // far more than the sockets' buffers hold
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}), testLimits)
	conn := dialServer(t, addr)
	fmt.Fprintf(conn, "GET /api/external/v1/jobs HTTP/1.1\r\nHost: farm\r\n\r\n")
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("64 MiB were written to a client that read nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an answer nobody reads was still being written after 10 s")
	}
}

// TestAtTheCapTheLongestWaitingConnectionMakesRoom: with two connections
// allowed, one silent since it opened and one kept alive after a request,
// a third is served within about makeRoomAfter: the silent one, waiting
// longest, is closed. The kept-alive one still works.
func TestAtTheCapTheLongestWaitingConnectionMakesRoom(t *testing.T) {
	limits := testLimits
	limits.maxConnections = 2
	limits.header = time.Minute // so that only making room can close the silent one
	addr := startServer(t, http.HandlerFunc(ok), limits)

	silent := dialServer(t, addr)
	// The server takes a connection as soon as it can; it has taken
	// this one once the next is served after it.
	kept := dialServer(t, addr)
	keptReader := bufio.NewReader(kept)
	if status := get(t, kept, keptReader, "/healthz"); status != http.StatusOK {
		t.Fatalf("healthz: %d", status)
	}

	start := time.Now()
	third := dialServer(t, addr)
	if status := get(t, third, bufio.NewReader(third), "/healthz"); status != http.StatusOK {
		t.Fatalf("healthz on a third connection: %d", status)
	}
	if took := time.Since(start); took > makeRoomAfter+time.Second {
		t.Errorf("the third connection was served after %v: it waited for a timeout instead of taking a waiting connection's place", took)
	}
	if _, err := io.ReadAll(silent); err != nil {
		t.Errorf("the silent connection: %v, want it closed by the server", err)
	}
	if status := get(t, kept, keptReader, "/healthz"); status != http.StatusOK {
		t.Errorf("the kept-alive connection answered %d after the third was served, want 200", status)
	}
}

// TestAtTheCapBusyConnectionsAreNotCut: when every allowed connection is
// busy with a request, a new one waits until one is done; none is cut.
func TestAtTheCapBusyConnectionsAreNotCut(t *testing.T) {
	limits := testLimits
	limits.maxConnections = 1
	release := make(chan struct{})
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}), limits)

	busy := dialServer(t, addr)
	fmt.Fprintf(busy, "GET /slow HTTP/1.1\r\nHost: farm\r\n\r\n")
	busyReader := bufio.NewReader(busy)

	waiting := dialServer(t, addr)
	fmt.Fprintf(waiting, "GET /healthz HTTP/1.1\r\nHost: farm\r\n\r\n")
	waitingReader := bufio.NewReader(waiting)
	waiting.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := waitingReader.Peek(1); !isTimeout(err) {
		t.Fatalf("a connection over the cap was answered (%v) while the only allowed one was busy", err)
	}

	close(release)
	if resp, err := http.ReadResponse(busyReader, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the busy request: %v, %v; want it answered", resp, err)
	}
	busy.Close()
	waiting.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(waitingReader, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting request: %v, %v; want it answered once the busy one closed", resp, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestObjectURLsKeepTheirOwnDeadlines: the API's body and answer times do
// not apply under /objects/, whose transfers may be long (the local store
// sets sliding deadlines of its own).
func TestObjectURLsKeepTheirOwnDeadlines(t *testing.T) {
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	}), testLimits)
	conn := dialServer(t, addr)
	const pieces = 4
	fmt.Fprintf(conn, "PUT /objects/uploads/s1/scene.blend HTTP/1.1\r\nHost: farm\r\nContent-Length: %d\r\n\r\n", pieces)
	start := time.Now()
	for range pieces {
		// Each pause is under the API body's time, the whole is over.
		time.Sleep(testLimits.apiBody / 2)
		conn.Write([]byte("x"))
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "4" {
		t.Errorf("a PUT under /objects/ that took %v: %d %q, want it read whole", time.Since(start), resp.StatusCode, b)
	}
}
