package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The parts of the farm that the outage tests stop and start: a
// PostgreSQL cluster and an S3 server of the test's own (the shared ones
// of scripts/services.sh serve every other test, and must stay up), and a
// Blender that notes every frame it renders.

// skipOrFail skips a test whose tools are missing here, except in CI,
// which must run everything.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "" {
		t.Skipf(format, args...)
	}
	t.Fatalf(format, args...)
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on addr, or
// the deadline passes.
func waitListening(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v", addr, within)
		}
	}
}

// postgresCluster is a PostgreSQL server of one test, which it can stop
// and start again on the same port and data.
type postgresCluster struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	// DSN is the URL of its postgres database.
	DSN string
}

// privatePostgres makes and starts a PostgreSQL cluster for the test, as
// scripts/services.sh does for the shared one: initdb refuses root, so it
// runs as the postgres user, in a directory of its own.
func privatePostgres(t *testing.T) *postgresCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		skipOrFail(t, "no PostgreSQL server installed here; scripts/test.sh installs it")
	}
	sort.Strings(bins)
	if os.Geteuid() != 0 {
		skipOrFail(t, "a PostgreSQL cluster of the test's own is made as the postgres user, which needs root")
	}
	dir, err := os.MkdirTemp("", "renderfarm-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &postgresCluster{t: t, bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: freePort(t)}
	p.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	t.Cleanup(func() {
		_ = p.pgctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v\n%s", dir, err, out)
	}
	initdb := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(p.bin, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Start()
	return p
}

func (p *postgresCluster) pgctl(args ...string) error {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-w"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the server and waits until it takes connections.
func (p *postgresCluster) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c max_connections=100 -c fsync=off -c synchronous_commit=off", p.port, p.dir)
	if err := p.pgctl("-l", filepath.Join(p.dir, "log"), "-o", opts, "start"); err != nil {
		p.t.Fatal(err)
	}
}

// Stop stops the server the way an operator's restart or a failover does:
// every session is cut at once.
func (p *postgresCluster) Stop() {
	p.t.Helper()
	if err := p.pgctl("-m", "fast", "stop"); err != nil {
		p.t.Fatal(err)
	}
}

// s3Server is a Versity Gateway of one test, which it can stop and start
// again on the same port and directory.
type s3Server struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	// Storage is the --storage URL of its bucket.
	Storage string
}

// privateS3 starts a Versity Gateway for the test, as scripts/services.sh
// does for the shared one, with one bucket in it.
func privateS3(t *testing.T) *s3Server {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			skipOrFail(t, "versitygw is not installed; scripts/services.sh (start_s3) installs it")
		}
	}
	key, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if key == "" || secret == "" {
		skipOrFail(t, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY name the S3 server's credentials; scripts/services.sh sets them")
	}
	s := &s3Server{t: t, bin: bin, dir: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	t.Cleanup(s.stop)
	s.Start()
	endpoint := "http://" + s.addr
	mc, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(key, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(t.Context(), "farm", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	s.Storage = "s3://farm?endpoint=" + url.QueryEscape(endpoint) + "&region=us-east-1"
	return s
}

// Start starts the server and waits until it takes connections.
func (s *s3Server) Start() {
	s.t.Helper()
	// Connections kept alive, as S3 services keep them: a stop breaks
	// the farm's pooled connections, not only new ones. (The shared
	// server of scripts/services.sh keeps the gateway's default, one
	// request a connection, for the objstore tests' refused requests.)
	s.cmd = exec.Command(s.bin, "--port", s.addr, "--keep-alive", "--quiet", "posix", s.dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+os.Getenv("AWS_ACCESS_KEY_ID"), "ROOT_SECRET_KEY="+os.Getenv("AWS_SECRET_ACCESS_KEY"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitListening(s.t, s.addr, 30*time.Second)
}

// Stop stops the server: connections to it are refused until Start.
func (s *s3Server) Stop() {
	s.t.Helper()
	s.stop()
}

func (s *s3Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// blenderLog is what a counting Blender noted: each frame it began
// (render_pre) and each it finished rendering (render_post), with the
// .blend it rendered from, whose path names the job.
type blenderLog struct {
	t    *testing.T
	path string
}

// countingBlender writes a wrapper around the real Blender that notes each
// frame it begins and finishes in a log of the test's: how many times
// Blender really rendered a frame, which a frame's attempts tell only as
// the farm saw it. The notes are written from inside Blender, so the farm
// must run it unconfined (--sandbox none).
func countingBlender(t *testing.T) (wrapper string, log *blenderLog) {
	t.Helper()
	dir := t.TempDir()
	log = &blenderLog{t: t, path: filepath.Join(dir, "renders.log")}
	script := filepath.Join(dir, "note_renders.py")
	wrapper = filepath.Join(dir, "blender")
	py := fmt.Sprintf(`import bpy

def noter(event):
    @bpy.app.handlers.persistent
    def note(scene, *args):
        with open(%q, "a") as f:
            f.write("%%s %%d %%s\n" %% (event, scene.frame_current, bpy.data.filepath))
    return note

bpy.app.handlers.render_pre.append(noter("began"))
bpy.app.handlers.render_post.append(noter("rendered"))
`, log.path)
	writeFile(t, script, []byte(py))
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec blender --python "+script+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, log
}

// count answers, per frame of the job, how many times Blender noted event
// ("began" or "rendered").
func (l *blenderLog) count(jobID, event string) map[int]int {
	l.t.Helper()
	counts := map[int]int{}
	b, err := os.ReadFile(l.path)
	if os.IsNotExist(err) {
		return counts
	}
	if err != nil {
		l.t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) != 3 || fields[0] != event || !strings.Contains(fields[2], jobID) {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			l.t.Fatalf("renders.log: %q", sc.Text())
		}
		counts[n]++
	}
	return counts
}

// renderedOnce checks that Blender rendered each of the job's frames
// 1..frames exactly once.
func (l *blenderLog) renderedOnce(jobID string, frames int) {
	l.t.Helper()
	got := l.count(jobID, "rendered")
	for n := 1; n <= frames; n++ {
		if got[n] != 1 {
			l.t.Errorf("Blender rendered frame %d %d times, want once (all: %v)", n, got[n], got)
		}
	}
}

// until polls cond every 50 ms until it holds, failing the test after
// within.
func until(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}
