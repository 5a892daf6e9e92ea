package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// A connection to serve is closed once it stops moving: an upload that
// stalls, a kept-alive connection with no next request. Otherwise clients
// that open connections and go quiet hold a file descriptor each, until
// the server can accept no more.

// rawConn opens a TCP connection to the farm, to speak HTTP by hand as a
// slow or silent client would. Its deadline fails a test that waits on a
// server that never closes it.
func rawConn(t *testing.T, farmURL string) net.Conn {
	t.Helper()
	u, err := url.Parse(farmURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitClosed reads conn until the server closes it, and answers when.
func waitClosed(t *testing.T, conn net.Conn) time.Time {
	t.Helper()
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the connection open for a minute")
	}
	return time.Now()
}

// requestURI is the path and query of a URL, for a request line.
func requestURI(t *testing.T, rawURL string) string {
	t.Helper()
	return mustParse(t, rawURL).RequestURI()
}

// TestStalledUploadIsCut: a PUT to an upload URL that sends part of the
// file and then nothing is cut after --upload-idle-timeout, and stores
// nothing a job could be made from.
func TestStalledUploadIsCut(t *testing.T) {
	const idle = 2 * time.Second
	f := startFarm(t, "--upload-idle-timeout", idle.String())
	c := f.client("studio")
	ctx := testContext(t)
	ticket, err := c.CreateUpload(ctx, "scene.blend", client.FileTypeBlend)
	if err != nil {
		t.Fatal(err)
	}

	conn := rawConn(t, f.URL)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: farm\r\nContent-Length: 100000\r\n\r\n%s", requestURI(t, ticket.UploadURL), strings.Repeat("B", 1000))
	stalled := time.Now()
	took := waitClosed(t, conn).Sub(stalled)
	if took < idle-200*time.Millisecond {
		t.Errorf("the upload was cut %v after it stalled, before --upload-idle-timeout %v", took, idle)
	}
	t.Logf("a PUT that stalled after 1,000 of 100,000 bytes was cut after %v (--upload-idle-timeout %v)", took, idle)

	if _, err := c.CreateJob(ctx, ticket.Slug); !client.HasCode(err, client.CodeUploadMissing) {
		t.Errorf("a job from the cut upload: %v, want %s", err, client.CodeUploadMissing)
	}
}

// TestSlowSteadyUploadGoesThrough: a PUT that takes four times
// --upload-idle-timeout, but never pauses that long, is stored whole.
func TestSlowSteadyUploadGoesThrough(t *testing.T) {
	const idle = 2 * time.Second
	f := startFarm(t, "--upload-idle-timeout", idle.String())
	c := f.client("studio")
	ctx := testContext(t)
	ticket, err := c.CreateUpload(ctx, "scene.blend", client.FileTypeBlend)
	if err != nil {
		t.Fatal(err)
	}
	blend, err := os.ReadFile(scene("cube.blend"))
	if err != nil {
		t.Fatal(err)
	}

	conn := rawConn(t, f.URL)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: farm\r\nContent-Length: %d\r\n\r\n", requestURI(t, ticket.UploadURL), len(blend))
	const pieces = 10
	start := time.Now()
	for i := range pieces {
		// A slow link: a tenth of the file every 0.8 s.
		time.Sleep(idle * 2 / 5)
		piece := blend[i*len(blend)/pieces : (i+1)*len(blend)/pieces]
		if _, err := conn.Write(piece); err != nil {
			t.Fatalf("the server cut a steady upload %v in: %v", time.Since(start), err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the steady upload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("steady upload over %v: status %d", time.Since(start), resp.StatusCode)
	}
	job, err := c.CreateJob(ctx, ticket.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if job.SceneFile == nil || job.SceneFile.SizeBytes != int64(len(blend)) {
		t.Errorf("the job's file is %+v, want the whole %d bytes", job.SceneFile, len(blend))
	}
}

// TestIdleKeepAliveConnectionsAreClosed: connections kept alive after a
// request are closed once they have waited --idle-timeout for the next.
func TestIdleKeepAliveConnectionsAreClosed(t *testing.T) {
	const idle = 2 * time.Second
	f := startFarm(t, "--idle-timeout", idle.String())
	const conns = 20
	answered := make([]time.Time, conns)
	open := make([]net.Conn, conns)
	for i := range open {
		open[i] = rawConn(t, f.URL)
		fmt.Fprintf(open[i], "GET /healthz HTTP/1.1\r\nHost: farm\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(open[i]), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz on connection %d: %d, close %v; want 200 on a kept-alive connection", i, resp.StatusCode, resp.Close)
		}
		answered[i] = time.Now()
	}
	var longest time.Duration
	for i, conn := range open {
		waited := waitClosed(t, conn).Sub(answered[i])
		if waited < idle-200*time.Millisecond {
			t.Errorf("connection %d was closed %v after its answer, before --idle-timeout %v", i, waited, idle)
		}
		longest = max(longest, waited)
	}
	t.Logf("%d idle kept-alive connections all closed, the last %v after its answer (--idle-timeout %v)", conns, longest, idle)
}

// TestConnectionsAtTheCapMakeRoom: with --max-connections 2 taken by a
// connection that sends nothing and one kept alive after a request, a third
// client is served within about a second, not after the 10 s header
// timeout or the minute of --idle-timeout: the connection that has waited
// longest for a request is closed to make room.
func TestConnectionsAtTheCapMakeRoom(t *testing.T) {
	f := startFarm(t, "--max-connections", "2")
	// The harness's own first request may still hold a connection, which
	// is as good a connection waiting for a request as these two.
	silent := rawConn(t, f.URL)
	kept := rawConn(t, f.URL)
	keptReader := bufio.NewReader(kept)
	healthz := func(conn net.Conn, r *bufio.Reader) {
		t.Helper()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: farm\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
	}
	healthz(kept, keptReader)

	start := time.Now()
	third := rawConn(t, f.URL)
	healthz(third, bufio.NewReader(third))
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("a third connection was served after %v, want about a second: the waiting connections kept it out", took)
	}
	closedAt := waitClosed(t, silent)
	t.Logf("at the cap of 2, a third connection was served after %v; the silent one was closed %v after the third opened", took, closedAt.Sub(start))
}
