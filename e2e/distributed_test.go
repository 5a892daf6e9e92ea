package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// distributed is the services of the distributed shape for one test: a
// fresh PostgreSQL database and a fresh bucket on the S3 server that
// scripts/test.sh starts.
type distributed struct {
	database string // postgres:// URL of the test's own database
	storage  string // s3:// URL of the test's own bucket
}

func newDistributed(t *testing.T) *distributed {
	t.Helper()
	requireTools(t)
	admin, endpoint := os.Getenv("RENDERFARM_TEST_POSTGRES"), os.Getenv("RENDERFARM_TEST_S3_ENDPOINT")
	if admin == "" || endpoint == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("RENDERFARM_TEST_POSTGRES and RENDERFARM_TEST_S3_ENDPOINT are not set; scripts/test.sh starts the services and sets them")
		}
		t.Skip("PostgreSQL and S3 are not running; scripts/test.sh starts them")
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "renderfarm-e2e-" + hex.EncodeToString(suffix)

	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.ReplaceAll(name, "-", "_")
	if _, err := db.Exec(`CREATE DATABASE ` + dbName); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP DATABASE IF EXISTS ` + dbName + ` WITH (FORCE)`)
		db.Close()
	})
	u, _ := url.Parse(admin)
	u.Path = "/" + dbName

	eu, _ := url.Parse(endpoint)
	s3, err := minio.New(eu.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: eu.Scheme == "https", Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s3.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	t.Cleanup(func() {
		for obj := range s3.ListObjects(ctx, name, minio.ListObjectsOptions{Recursive: true}) {
			_ = s3.RemoveObject(ctx, name, obj.Key, minio.RemoveObjectOptions{})
		}
		_ = s3.RemoveBucket(ctx, name)
	})
	return &distributed{database: u.String(), storage: "s3://" + name + "?endpoint=" + url.QueryEscape(endpoint) + "&region=us-east-1"}
}

// process is one renderfarm process of a test.
type process struct {
	cmd  *exec.Cmd
	log  *logBuffer
	url  string
	done chan struct{}
}

// start runs `renderfarm args…` and waits for the line that says it is up.
func start(t *testing.T, ready string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), log: &logBuffer{}, done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), ready); ok {
				up <- rest
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	select {
	case p.url = <-up:
	case <-p.done:
		t.Fatalf("renderfarm %s exited at start:\n%s", args[0], p.log.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("renderfarm %s did not start:\n%s", args[0], p.log.String())
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("renderfarm %s log:\n%s", args[0], p.log.String())
		}
	})
	return p
}

// TestTwoReplicasAndTwoWorkersSurviveAWorkerKill runs the distributed
// shape: two API replicas with no workers and two render nodes on one
// PostgreSQL database and one bucket. Both nodes render; one is killed
// with SIGKILL mid-render; the job still completes with every frame once,
// in the bucket, downloadable from either replica.
func TestTwoReplicasAndTwoWorkersSurviveAWorkerKill(t *testing.T) {
	d := newDistributed(t)
	common := []string{"--database", d.database, "--storage", d.storage, "--worker-timeout", "5s"}
	apiA := start(t, "renderfarm serving at ", append([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--workers", "0", "--data-dir", t.TempDir()}, common...)...)
	apiB := start(t, "renderfarm serving at ", append([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--workers", "0", "--data-dir", t.TempDir()}, common...)...)
	nodes := map[string]*process{}
	for _, name := range []string{"node-a", "node-b"} {
		nodes[name] = start(t, "renderfarm worker ", append([]string{"worker", "--worker-name", name, "--work-dir", t.TempDir()}, common...)...)
	}

	keyOut, err := exec.Command(binary, "keys", "create", "--database", d.database, "--workspace", "studio").Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	key := strings.TrimSpace(string(keyOut))
	newClient := func(base string) *client.Client {
		hc := &http.Client{Transport: apitest.ValidatingTransport(t, http.DefaultTransport), Timeout: time.Minute}
		return client.New(base, key, client.WithHTTPClient(hc), client.WithPollInterval(100*time.Millisecond))
	}
	a, b := newClient(apiA.url), newClient(apiB.url)
	ctx := testContext(t)

	job := validate(ctx, t, a, submit(ctx, t, a, scene("cube.blend")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	cfg := slowRender("1-16")
	cfg.ChunkSize = client.Int(2)
	if _, _, err := b.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}

	// Wait until both nodes have stored frames and the job is still going.
	byWorker := func() map[string]int {
		p, err := a.Progress(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, f := range p.Frames {
			if f.Status == client.FrameCompleted {
				n[f.Worker]++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := byWorker()
		if n["node-a"] > 0 && n["node-b"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes frames were rendered by %v, want both nodes", n)
		}
		time.Sleep(100 * time.Millisecond)
	}

	killed := time.Now()
	if err := nodes["node-a"].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done, err := b.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	t.Logf("completed %.1f s after node-a was killed; frames per node: %v", time.Since(killed).Seconds(), byWorker())

	for name, c := range map[string]*client.Client{"replica A": a, "replica B": b} {
		dl, err := c.Downloads(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl.FrameOutputs) != 16 || dl.Transforms.FramesZip == nil || dl.Transforms.Video == nil {
			t.Fatalf("%s lists %d frames, zip %v, video %v", name, len(dl.FrameOutputs), dl.Transforms.FramesZip, dl.Transforms.Video)
		}
		seen := map[string]bool{}
		for _, out := range dl.FrameOutputs {
			if seen[out.FileName] {
				t.Errorf("%s lists %s twice", name, out.FileName)
			}
			seen[out.FileName] = true
			if !strings.HasPrefix(out.URL, os.Getenv("RENDERFARM_TEST_S3_ENDPOINT")) {
				t.Errorf("%s's URL for %s does not point at the bucket: %s", name, out.FileName, out.URL)
			}
		}
		path := filepath.Join(t.TempDir(), dl.FrameOutputs[15].FileName)
		if _, err := c.DownloadFile(ctx, dl.FrameOutputs[15].URL, path); err != nil {
			t.Fatalf("%s: download from the bucket: %v", name, err)
		}
		checkPNG(t, path, 320, 180)
	}
	p, err := a.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesCompleted != 16 {
		t.Errorf("%d of 16 frames completed", p.FramesCompleted)
	}
}

// TestBucketUploadOverTheLimitIsRefusedAtJobCreation: a presigned PUT to a
// bucket takes any size, so the limit is checked when the job is made: the
// request is refused with 413 and the file is removed.
func TestBucketUploadOverTheLimitIsRefusedAtJobCreation(t *testing.T) {
	d := newDistributed(t)
	api := start(t, "renderfarm serving at ", "serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--workers", "0", "--data-dir", t.TempDir(),
		"--database", d.database, "--storage", d.storage, "--max-upload-bytes", "10KiB")
	keyOut, err := exec.Command(binary, "keys", "create", "--database", d.database, "--workspace", "studio").Output()
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(api.url, strings.TrimSpace(string(keyOut)))
	ctx := testContext(t)
	slug, err := c.UploadFile(ctx, scene("cube.blend"), nil)
	if err != nil {
		t.Fatalf("the bucket refused the upload itself: %v", err)
	}
	_, err = c.CreateJob(ctx, slug)
	var apiErr *client.APIError
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("create job from a 98 kB upload with a 10 KiB limit: %v, want 413", err)
	}
	if _, err := c.CreateJob(ctx, slug); !client.HasCode(err, client.CodeUploadMissing) {
		t.Errorf("the refused file is still there: %v", err)
	}
}

// TestWorkerNeedsTheSharedDatabaseAndBucket: a worker on its own SQLite
// and disk would render frames no API server can see.
func TestWorkerNeedsTheSharedDatabaseAndBucket(t *testing.T) {
	out, err := exec.Command(binary, "worker", "--data-dir", t.TempDir()).CombinedOutput()
	var exitErr *exec.ExitError
	if !asExitError(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(out), "--database postgres://") {
		t.Errorf("worker without --database and --storage: %v\n%s\nwant exit 2 saying what to give", err, out)
	}
}
