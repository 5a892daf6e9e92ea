package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// distributed is the services of the distributed shape for one test: a
// fresh PostgreSQL database and a fresh bucket on the servers that
// scripts/test.sh starts.
type distributed struct {
	database string // postgres:// URL of the test's own database
	storage  string // s3:// URL of the test's own bucket
}

func newDistributed(t *testing.T) *distributed {
	t.Helper()
	requireTools(t)
	return &distributed{database: testbackends.PostgresDatabase(t, ""), storage: testbackends.S3Bucket(t).Storage("")}
}

// api starts an API server of the distributed shape in the test's
// process: args besides --database and --storage.
func (d *distributed) api(t *testing.T, args ...string) *farm {
	t.Helper()
	return startFarm(t, append([]string{"--database", d.database, "--storage", d.storage}, args...)...)
}

// worker starts a render node, the real binary, so that it can be killed;
// it is stopped when the test ends.
func worker(t *testing.T, args ...string) *apptest.Process {
	t.Helper()
	log := &apptest.LogBuffer{}
	p := apptest.StartCommand(t, "", log, "renderfarm worker ", append([]string{"worker"}, args...)...)
	t.Cleanup(func() {
		p.Terminate(t)
		if t.Failed() {
			t.Logf("renderfarm worker log:\n%s", log.String())
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
	apiA := d.api(t, "--workers", "0", "--worker-timeout", "5s")
	apiB := d.api(t, "--workers", "0", "--worker-timeout", "5s")
	nodes := map[string]*apptest.Process{}
	for _, name := range []string{"node-a", "node-b"} {
		nodes[name] = worker(t, "--worker-name", name, "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", "5s")
	}
	key := apiA.Key("studio")
	newClient := func(base string) *client.Client {
		hc := &http.Client{Transport: apitest.ValidatingTransport(t, http.DefaultTransport), Timeout: time.Minute}
		return client.New(base, key, client.WithHTTPClient(hc), client.WithPollInterval(100*time.Millisecond))
	}
	a, b := newClient(apiA.URL), newClient(apiB.URL)
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
	nodes["node-a"].Kill()
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
	api := d.api(t, "--workers", "0", "--max-upload-bytes", "10KiB")
	c := client.New(api.URL, api.Key("studio"))
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
	out, err := exec.Command(binary(t), "worker", "--data-dir", t.TempDir()).CombinedOutput()
	var exitErr *exec.ExitError
	if !asExitError(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(out), "--database postgres://") {
		t.Errorf("worker without --database and --storage: %v\n%s\nwant exit 2 saying what to give", err, out)
	}
}

// TestASecondWorkerUnderALiveWorkersNameRefusesToStart: a render node
// started under the name of one that runs exits at start, saying which run
// holds the name and when it was last heard from; the running one goes on.
func TestASecondWorkerUnderALiveWorkersNameRefusesToStart(t *testing.T) {
	d := newDistributed(t)
	args := []string{"--worker-name", "twin", "--database", d.database, "--storage", d.storage, "--worker-timeout", "4s"}
	first := worker(t, append(args, "--work-dir", t.TempDir())...)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), append([]string{"worker", "--work-dir", t.TempDir()}, args...)...).CombinedOutput()
	var exitErr *exec.ExitError
	if !asExitError(err, &exitErr) || !strings.Contains(string(out), `another render node runs under the name "twin"`) ||
		!strings.Contains(string(out), "last heard from") {
		t.Fatalf("a second worker named twin: %v\n%s\nwant it to exit saying the name is taken and by which run", err, out)
	}
	if !first.Running() {
		t.Error("the first worker stopped")
	}
}

// TestAWorkerRestartedAfterAKillTakesItsNameAtOnce: a render node killed
// with SIGKILL mid-chunk and started again at once, on the same machine,
// under the same name, starts within seconds: its earlier run's process
// is provably dead, so it is not watched for two heartbeats (11 s at the
// default --worker-timeout), and its chunk is handed out again at once,
// not at the reaper's next search. The job completes, every frame once;
// the frames stored before the kill are not rendered again.
func TestAWorkerRestartedAfterAKillTakesItsNameAtOnce(t *testing.T) {
	t.Parallel()
	d := newDistributed(t)
	api := d.api(t, "--workers", "0")
	blender, renders := countingBlender(t)
	args := []string{"--worker-name", "node-a", "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage,
		"--blender", blender, "--sandbox", "none"}
	node := worker(t, args...)
	c := api.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	const frames = 6
	cfg := slowRender(fmt.Sprintf("1-%d", frames))
	cfg.ChunkSize = client.Int(frames)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)

	node.Kill()
	before, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if before.FramesCompleted == frames {
		t.Fatal("the chunk ended before the kill; the test needs a slower chunk")
	}
	restarted := time.Now()
	worker(t, args...)
	took := time.Since(restarted)
	t.Logf("the restarted worker took its name %.1f s after it was started", took.Seconds())
	if took > 5*time.Second {
		t.Errorf("the restarted worker took %v to start; want it within seconds, its earlier run's process being dead", took)
	}

	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("the job ended %v, %v; want completed", done, err)
	}
	t.Logf("completed %.1f s after the restart", time.Since(restarted).Seconds())
	rendered := renders.count(job.ID, "rendered")
	for _, fr := range before.Frames {
		if fr.Status == client.FrameCompleted && rendered[fr.Frame] != 1 {
			t.Errorf("frame %d, stored before the kill, was rendered %d times", fr.Frame, rendered[fr.Frame])
		}
	}
	dl, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, out := range dl.FrameOutputs {
		if seen[out.FileName] {
			t.Errorf("%s is listed twice", out.FileName)
		}
		seen[out.FileName] = true
	}
	if len(seen) != frames {
		t.Errorf("%d frames to download, want %d", len(seen), frames)
	}
}

// TestAKilledLeadersChunkIsHandedOutWithinTheWorkerTimeout: the render
// node killed is River's leader (it started first, alone, and was
// elected), which runs the periodic search for dead workers. Its chunk is
// still handed out within --worker-timeout (4 s here, checked against
// twice that): every process looks for dead workers, where River would
// elect another leader only once the dead one's term ran out (about 14 s
// after the kill, measured by bench/distributed).
func TestAKilledLeadersChunkIsHandedOutWithinTheWorkerTimeout(t *testing.T) {
	const timeout = 4 * time.Second
	d := newDistributed(t)
	db, err := sql.Open("pgx", d.database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := testContext(t)
	leader := func() string {
		var id string
		if err := db.QueryRowContext(ctx, `SELECT leader_id FROM river_leader WHERE expires_at > now()`).Scan(&id); err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return id
	}
	nodeArgs := func(name string) []string {
		return []string{"--worker-name", name, "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", timeout.String()}
	}
	nodeA := worker(t, nodeArgs("node-a")...)
	first := ""
	for deadline := time.Now().Add(time.Minute); first == ""; time.Sleep(100 * time.Millisecond) {
		if first = leader(); first == "" && time.Now().After(deadline) {
			t.Fatal("node-a, alone, was not elected River's leader within a minute")
		}
	}
	api := d.api(t, "--workers", "0", "--worker-timeout", timeout.String())
	worker(t, nodeArgs("node-b")...)
	c := api.client("studio")
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender("1-16")
	cfg.ChunkSize = client.Int(2)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}

	var taskID string
	var generation int
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		err := db.QueryRowContext(ctx, `SELECT t.id, t.generation FROM tasks t JOIN workers w ON w.id = t.worker_id
			WHERE w.name = 'node-a' AND t.kind = 'render' AND t.status = 'running' LIMIT 1`).Scan(&taskID, &generation)
		if err == nil {
			break
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("node-a ran no chunk within 2 minutes")
		}
	}
	if now := leader(); now != first {
		t.Fatalf("River's leader changed from %s to %s before the kill", first, now)
	}
	killed := time.Now()
	nodeA.Kill()
	for ; ; time.Sleep(50 * time.Millisecond) {
		var now int
		if err := db.QueryRowContext(ctx, `SELECT generation FROM tasks WHERE id = $1`, taskID).Scan(&now); err != nil {
			t.Fatal(err)
		}
		if now > generation {
			break
		}
		if time.Since(killed) > 2*timeout {
			t.Fatalf("node-a's chunk was not handed out within %v of its kill (River's leader, %s, is %q now)", 2*timeout, first, leader())
		}
	}
	t.Logf("the leader's chunk was handed out %.2f s after the kill", time.Since(killed).Seconds())
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("the job ended %v, %v; want completed", done, err)
	}
}

// TestBucketDownloadsServedThroughTheFarmAreCounted: with serve
// --serve-downloads, a bucket's download URLs are the farm's, both those
// the API lists and those of the completed event, which the render node
// that finished the job signs; they serve the frames from the bucket, and
// usage counts the bytes they sent, which a bucket's own URLs cannot.
func TestBucketDownloadsServedThroughTheFarmAreCounted(t *testing.T) {
	d := newDistributed(t)
	api := d.api(t, "--workers", "0", "--serve-downloads", "--webhook-allow-private")
	worker(t, "--worker-name", "node", "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage)
	c := api.client("studio")
	ctx := testContext(t)
	rcv := newReceiver(t, nil)
	hook, err := c.CreateWebhook(ctx, rcv.srv.URL+"/renderfarm", []string{client.EventRenderComplete})
	if err != nil {
		t.Fatal(err)
	}

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-2"}, SampleCount: client.Int(2)})
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	dl, err := c.Downloads(ctx, job.ID)
	if err != nil || len(dl.FrameOutputs) != 2 || dl.Transforms.FramesZip == nil {
		t.Fatalf("downloads: %+v, %v", dl, err)
	}
	farmURL := api.URL + "/objects/"
	urls := []string{*dl.Transforms.FramesZip}
	for _, out := range dl.FrameOutputs {
		urls = append(urls, out.URL)
	}
	deadline := time.Now().Add(time.Minute)
	for len(rcv.of(client.EventRenderComplete)) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	complete := rcv.of(client.EventRenderComplete)
	if len(complete) == 0 {
		t.Fatal("no onRenderComplete within a minute")
	}
	ev, err := client.VerifyWebhook(hook.Secret, complete[0].header, complete[0].body, 0)
	if err != nil || ev.Outputs == nil || len(ev.Outputs.Frames) != 2 {
		t.Fatalf("onRenderComplete: %+v, %v", ev, err)
	}
	urls = append(urls, ev.Outputs.Frames...)
	for _, u := range urls {
		if !strings.HasPrefix(u, farmURL) {
			t.Errorf("download URL %s is not the farm's (%s…)", u, farmURL)
		}
	}

	var sent int64
	for i, u := range []string{dl.FrameOutputs[0].URL, ev.Outputs.Frames[1], *dl.Transforms.FramesZip} {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("download-%d", i))
		n, err := c.DownloadFile(ctx, u, path)
		if err != nil || n == 0 {
			t.Fatalf("download %s: %d bytes, %v", u, n, err)
		}
		if i < 2 {
			checkPNG(t, path, 64, 36)
		}
		sent += n
	}
	// A download is counted once its answer is sent, a moment after the
	// client has it all.
	var u *client.Usage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if u, err = c.Usage(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Minute), "job"); err != nil {
			t.Fatal(err)
		}
		if u.Total.BytesTransferred >= sent || time.Now().After(deadline) {
			break
		}
	}
	if u.Total.BytesTransferred != sent || len(u.Rows) != 1 || u.Rows[0].JobID != job.ID {
		t.Errorf("usage = %+v; want the job's %d bytes transferred", u, sent)
	}
}
