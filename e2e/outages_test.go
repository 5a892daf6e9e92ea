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
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// When the farm's own parts fail: the database or the bucket goes away
// mid-render, the disk fills up, the process is told to stop. Nothing is
// stranded, nothing is lost or rendered twice, and clients are told the
// truth meanwhile.

// checkFramesOnce checks that the job completed, every frame of 1..frames
// on its first attempt, and that Blender rendered each once.
func checkFramesOnce(ctx context.Context, t *testing.T, c *client.Client, log *blenderLog, jobID string, frames int) {
	t.Helper()
	p, err := c.Progress(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != client.StatusCompleted || p.FramesCompleted != frames || p.WaitingFor != "" {
		t.Errorf("progress = %s, %d of %d frames, waiting for %q; want completed, every frame, waiting for nothing", p.Status, p.FramesCompleted, frames, p.WaitingFor)
	}
	for _, fr := range p.Frames {
		if fr.Status != client.FrameCompleted || fr.Attempts != 1 {
			t.Errorf("frame %d = %s after %d attempts, want completed on the first", fr.Frame, fr.Status, fr.Attempts)
		}
	}
	log.renderedOnce(jobID, frames)
}

// checkTaskInvariant checks the farm's invariant on a farm in the test's
// process: every unfinished task has a live River job
// (docs/architecture.md).
func checkTaskInvariant(t *testing.T, f *farm) {
	t.Helper()
	stranded, err := f.Main().Store().StrandedTasks(t.Context(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stranded {
		t.Errorf("task %s (%s, %s) has no live River job: River job %d is %q", st.ID, st.Kind, st.Status, st.RiverJobID, st.RiverState)
	}
}

// checkNotReady checks that /readyz answers 503 with Retry-After.
func checkNotReady(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("/readyz = %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestPostgreSQLStoppedFiveTimesMidRender stops the farm's PostgreSQL for
// 20 s while a job renders, five times, one job each time. Meanwhile the
// API answers 503 UNAVAILABLE with Retry-After and /readyz 503; every job
// completes within 60 s of the database's return, every frame rendered
// once, on its first attempt.
func TestPostgreSQLStoppedFiveTimesMidRender(t *testing.T) {
	requireTools(t)
	pg := privatePostgres(t)
	blender, renders := countingBlender(t)
	f := startFarm(t, "--database", pg.DSN, "--workers", "1", "--blender", blender, "--sandbox", "none", "--outage-tolerance", "5m")
	c := f.client("studio")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	const rounds, frames, outage = 5, 4, 20 * time.Second
	var jobs []*client.Job
	for range rounds {
		jobs = append(jobs, validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID))
	}
	for round, job := range jobs {
		cfg := slowRender(fmt.Sprintf("1-%d", frames))
		cfg.ChunkSize = client.Int(frames)
		if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
			t.Fatal(err)
		}
		waitFrames(t, c, job.ID, 1)

		pg.Stop()
		stopped := time.Now()
		_, err := c.GetJob(ctx, job.ID)
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable || apiErr.Code != client.CodeUnavailable || apiErr.RetryAfter <= 0 {
			t.Errorf("round %d: GET /jobs/{id} with the database down = %v; want 503 UNAVAILABLE with Retry-After", round+1, err)
		}
		checkNotReady(t, f.URL)
		time.Sleep(outage - time.Since(stopped))
		pg.Start()
		back := time.Now()

		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		done, err := c.Wait(wctx, job.ID, client.UntilFinal, nil)
		wcancel()
		if err != nil || done.Status != client.StatusCompleted {
			t.Fatalf("round %d: job = %v, %v; want completed within 60 s of the database's return\n%s", round+1, done, err, f.Log.String())
		}
		t.Logf("round %d: completed %.1f s after the database came back", round+1, time.Since(back).Seconds())
		checkFramesOnce(ctx, t, c, renders, job.ID, frames)
	}
	checkTaskInvariant(t, f)
}

// TestTheFarmsDatabaseConnectionsDroppedMidRender drops the farm's
// PostgreSQL connections while Blender renders a chunk, three times:
// every session of the farm ended with pg_terminate_backend (the server
// says so: SQLSTATE 57P01); then every connection dropped without a word
// between the farm and the server, as a network or a load balancer does
// (pgx reads an unexpected EOF); then reset. Each is an outage of the
// database, waited out: the job completes, every frame rendered once, on
// its first attempt, and no task is stranded.
func TestTheFarmsDatabaseConnectionsDroppedMidRender(t *testing.T) {
	t.Parallel()
	requireTools(t)
	dsn := testbackends.PostgresDatabase(t, "")
	target, err := testbackends.HostOf(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testbackends.NewCuttingProxy(t, target)
	through, err := proxy.Through(dsn)
	if err != nil {
		t.Fatal(err)
	}
	blender, renders := countingBlender(t)
	f := startFarm(t, "--database", through, "--workers", "1", "--blender", blender, "--sandbox", "none", "--outage-tolerance", "2m")
	c := f.client("studio")
	ctx := testContext(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	const frames = 8
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender(fmt.Sprintf("1-%d", frames))
	cfg.ChunkSize = client.Int(frames)
	cfg.SampleCount = client.Int(128)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}

	waitFramesThroughOutages(t, c, job.ID, 1)
	var ended int
	err = admin.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()`).Scan(&ended)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ended %d sessions of the farm with pg_terminate_backend", ended)
	waitFramesThroughOutages(t, c, job.ID, 3)
	t.Logf("dropped %d connections of the farm without a word", proxy.Cut(false))
	answersAnOutageAsOne(t, c, job.ID)
	waitFramesThroughOutages(t, c, job.ID, 5)
	t.Logf("reset %d connections of the farm", proxy.Cut(true))
	answersAnOutageAsOne(t, c, job.ID)
	if p, err := c.Progress(ctx, job.ID); err == nil && p.FramesCompleted == frames {
		t.Fatal("the chunk ended before the last drop; the test needs a slower chunk")
	}

	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("job = %v, %v; want completed", done, err)
	}
	checkFramesOnce(ctx, t, c, renders, job.ID, frames)
	checkTaskInvariant(t, f)
}

// answersAnOutageAsOne asks for the job's progress a few times at once
// after the farm's database connections dropped: the farm answers, or
// answers 503 UNAVAILABLE, never a 500 that blames itself.
func answersAnOutageAsOne(t *testing.T, c *client.Client, id string) {
	t.Helper()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := c.Progress(t.Context(), id); err != nil && !client.IsUnavailable(err) {
				t.Errorf("progress right after the drop: %v; want an answer, or 503 UNAVAILABLE", err)
			}
		})
	}
	wg.Wait()
}

// waitFramesThroughOutages waits, for up to 2 minutes, until n of the
// job's frames are stored; the API's 503s for an outage are waited out.
func waitFramesThroughOutages(t *testing.T, c *client.Client, id string, n int) {
	t.Helper()
	until(t, 2*time.Minute, fmt.Sprintf("%d frames stored", n), func() bool {
		p, err := c.Progress(t.Context(), id)
		if err != nil && !client.IsUnavailable(err) {
			t.Fatal(err)
		}
		if p != nil && p.Status.IsFinal() {
			t.Fatalf("the job ended %s while the test waited for %d frames", p.Status, n)
		}
		return err == nil && p.FramesCompleted >= n
	})
}

// TestTheBucketStoppedForAMinuteMidRender stops the farm's S3 server for
// 60 s while a job renders: the job waits, its progress saying for what,
// and completes when the bucket is back, every frame rendered once.
func TestTheBucketStoppedForAMinuteMidRender(t *testing.T) {
	requireTools(t)
	s3 := privateS3(t)
	blender, renders := countingBlender(t)
	f := startFarm(t, "--storage", s3.Storage, "--workers", "1", "--blender", blender, "--sandbox", "none", "--outage-tolerance", "5m")
	c := f.client("studio")
	ctx := testContext(t)

	const frames, outage = 6, 60 * time.Second
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender(fmt.Sprintf("1-%d", frames))
	cfg.ChunkSize = client.Int(frames)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)

	s3.Stop()
	stopped := time.Now()
	until(t, 45*time.Second, "the progress says the job waits for the bucket", func() bool {
		p, err := c.Progress(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.IsFinal() {
			t.Fatalf("job ended %s while the bucket was out", p.Status)
		}
		return p.WaitingFor == "the bucket"
	})
	t.Logf("the progress said so %.1f s after the bucket stopped", time.Since(stopped).Seconds())
	checkNotReady(t, f.URL)
	time.Sleep(outage - time.Since(stopped))
	s3.Start()
	back := time.Now()

	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	done, err := c.Wait(wctx, job.ID, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("job = %v, %v; want completed once the bucket is back\n%s", done, err, f.Log.String())
	}
	t.Logf("completed %.1f s after the bucket came back", time.Since(back).Seconds())
	checkFramesOnce(ctx, t, c, renders, job.ID, frames)
	dl, err := c.Downloads(ctx, job.ID)
	if err != nil || len(dl.FrameOutputs) != frames {
		t.Errorf("downloads = %v, %v; want %d frames", dl, err, frames)
	}
	checkTaskInvariant(t, f)
}

// chunkTook is how long the first chunk that rendered took, from the
// node's "chunk rendered" line in log.
func chunkTook(t *testing.T, log string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`msg="chunk rendered".* took=(\S+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no chunk was logged as rendered:\n%s", log)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// teardown is what a stop may take beyond the running chunk: River's
// stop, the warm Blenders ended, the database closed.
const teardown = 2 * time.Second

// TestSIGTERMLetsTheRunningChunkFinish: SIGTERM to serve while Blender
// renders a chunk lets the chunk finish, then exits 0, in no more time
// than the chunk took; after a restart the job completes and Blender
// rendered no frame twice.
func TestSIGTERMLetsTheRunningChunkFinish(t *testing.T) {
	blender, renders := countingBlender(t)
	f := startProcessFarm(t, "--shutdown-timeout", "60s", "--blender", blender, "--sandbox", "none")
	c := f.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender("1-6")
	cfg.ChunkSize = client.Int(3)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)

	stopped := time.Now()
	if code := f.Terminate(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0:\n%s", code, f.Log.String())
	}
	took, chunk := time.Since(stopped), chunkTook(t, f.Log.String())
	t.Logf("exited %.1f s after SIGTERM; the chunk took %.1f s", took.Seconds(), chunk.Seconds())
	if took > chunk+teardown {
		t.Errorf("the stop took %v, longer than the chunk (%v) and a teardown", took, chunk)
	}

	f.Start()
	c = f.client("studio")
	if done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil); err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("after the restart: %v, %v", done, err)
	}
	checkFramesOnce(ctx, t, c, renders, job.ID, 6)
}

// TestSIGTERMToAWorkerLetsTheRunningChunkFinish: the same for a render
// node of the distributed shape; the node started again under the same
// name renders the rest, and no frame twice.
func TestSIGTERMToAWorkerLetsTheRunningChunkFinish(t *testing.T) {
	d := newDistributed(t)
	api := d.api(t, "--workers", "0")
	blender, renders := countingBlender(t)
	args := []string{"--worker-name", "node-a", "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage,
		"--blender", blender, "--sandbox", "none", "--shutdown-timeout", "60s"}
	node := worker(t, args...)
	c := api.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender("1-6")
	cfg.ChunkSize = client.Int(3)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)

	stopped := time.Now()
	if code := node.Terminate(t); code != 0 {
		t.Fatalf("worker exited %d after SIGTERM, want 0:\n%s", code, node.Log.String())
	}
	took, chunk := time.Since(stopped), chunkTook(t, node.Log.String())
	t.Logf("exited %.1f s after SIGTERM; the chunk took %.1f s", took.Seconds(), chunk.Seconds())
	if took > chunk+teardown {
		t.Errorf("the stop took %v, longer than the chunk (%v) and a teardown", took, chunk)
	}

	worker(t, args...)
	if done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil); err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("after the restart: %v, %v", done, err)
	}
	checkFramesOnce(ctx, t, c, renders, job.ID, 6)
}

// TestASecondSIGTERMStopsAtOnce: the second SIGTERM does not wait for the
// chunk: serve exits within seconds, with the status of a forced stop
// (app.ExitStoppedByForce, not 0), and hands the chunk back. After a
// restart under the same name the job completes; the frames stored before
// the stop are not rendered again, and every frame's attempts count each
// time Blender began it.
func TestASecondSIGTERMStopsAtOnce(t *testing.T) {
	blender, renders := countingBlender(t)
	f := startProcessFarm(t, "--shutdown-timeout", "60s", "--blender", blender, "--sandbox", "none")
	c := f.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender("1-4")
	cfg.ChunkSize = client.Int(4)
	cfg.SampleCount = client.Int(256)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)

	f.Signal(syscall.SIGTERM)
	until(t, 30*time.Second, "serve says it is stopping", func() bool { return strings.Contains(f.Log.String(), "stopping:") })
	stopped := time.Now()
	f.Signal(syscall.SIGTERM)
	code := f.Wait()
	t.Logf("exited %.1f s after the second SIGTERM, with %d", time.Since(stopped).Seconds(), code)
	if took := time.Since(stopped); took > 15*time.Second {
		t.Errorf("the second SIGTERM took %v to stop serve; want it at once", took)
	}
	checkStoppedByForce(t, code, f.Log.String())
	f.Start()
	c = f.client("studio")
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var stored []int
	for _, fr := range p.Frames {
		if fr.Status == client.FrameCompleted {
			stored = append(stored, fr.Frame)
		}
	}
	if done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil); err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("after the restart: %v, %v", done, err)
	}
	rendered, began := renders.count(job.ID, "rendered"), renders.count(job.ID, "began")
	for _, n := range stored {
		if rendered[n] != 1 {
			t.Errorf("frame %d, stored before the stop, was rendered %d times", n, rendered[n])
		}
	}
	final, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range final.Frames {
		if fr.Attempts != began[fr.Frame] {
			t.Errorf("frame %d took %d attempts, but Blender began it %d times", fr.Frame, fr.Attempts, began[fr.Frame])
		}
	}
}

// checkStoppedByForce checks that a process whose stop cut its running
// chunk short exited with the status that says so, and said why.
func checkStoppedByForce(t *testing.T, code int, log string) {
	t.Helper()
	if code != app.ExitStoppedByForce || !strings.Contains(log, "stopped before the running work finished") {
		t.Errorf("exit status %d after a stop that cut the running chunk short; want %d (stopped by force), saying why:\n%s", code, app.ExitStoppedByForce, log)
	}
}

// TestAWorkerWhoseShutdownTimeoutPassesExitsStoppedByForce: SIGTERM to a
// render node whose chunk outlasts --shutdown-timeout (1 s) cuts the chunk
// short at the timeout and hands it back; the node exits with
// app.ExitStoppedByForce, not 0, so that its supervisor can tell. Started
// again under its name, it renders the rest: the job completes, and the
// frames stored before the stop are not rendered again.
func TestAWorkerWhoseShutdownTimeoutPassesExitsStoppedByForce(t *testing.T) {
	t.Parallel()
	d := newDistributed(t)
	api := d.api(t, "--workers", "0")
	blender, renders := countingBlender(t)
	args := []string{"--worker-name", "node-a", "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage,
		"--blender", blender, "--sandbox", "none", "--shutdown-timeout", "1s"}
	node := worker(t, args...)
	c := api.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender("1-4")
	cfg.ChunkSize = client.Int(4)
	cfg.SampleCount = client.Int(256)
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)

	stopped := time.Now()
	code := node.Terminate(t)
	t.Logf("exited %.1f s after SIGTERM, with %d", time.Since(stopped).Seconds(), code)
	checkStoppedByForce(t, code, node.Log.String())
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesCompleted == 4 {
		t.Fatal("the chunk finished within the 1 s shutdown timeout; the test needs a slower chunk")
	}

	worker(t, args...)
	if done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil); err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("after the restart: %v, %v", done, err)
	}
	rendered := renders.count(job.ID, "rendered")
	for _, fr := range p.Frames {
		if fr.Status == client.FrameCompleted && rendered[fr.Frame] != 1 {
			t.Errorf("frame %d, stored before the stop, was rendered %d times", fr.Frame, rendered[fr.Frame])
		}
	}
}

// TestAFullDiskIsWaitedOutAndUploadsAreRefusedWith507 runs serve on a
// small tmpfs of its own. Full, it refuses an upload with 507
// STORAGE_FULL and keeps nothing of it. With less free than the node's
// reserve, a render waits, its progress naming the node's disk, and the
// metric says so; once space is freed, the render resumes and completes.
func TestAFullDiskIsWaitedOutAndUploadsAreRefusedWith507(t *testing.T) {
	requireTools(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Blender's processes, ended as the farm stopped, may still be
		// letting go of the directory.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, err := exec.Command("umount", dir).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				// What still holds it is logged for whoever looks into it;
				// the mount is detached so that the test's directory goes.
				holders, _ := exec.Command("fuser", "-vm", dir).CombinedOutput()
				t.Logf("umount %s: %v\n%s\nheld by:\n%s", dir, err, out, holders)
				if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
					t.Errorf("umount -l %s: %v\n%s", dir, err, out)
				}
				return
			}
		}
	})
	f := &farm{Farm: apptest.New(t, "--worker-name", "tmpfs-node", "--disk-reserve", "24MiB", "--outage-tolerance", "5m", "--admin-token", "tok"), t: t}
	f.DataDir = filepath.Join(dir, "data")
	f.Start()
	t.Cleanup(f.Stop)
	c := f.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)

	uploads := func() []string {
		files, err := filepath.Glob(filepath.Join(f.DataDir, "objects", "uploads", "*", "*"))
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	before := uploads()
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	// POST /uploads writes a row, the PUT the file: whichever meets the
	// full disk answers 507.
	_, err := c.UploadFile(ctx, scene("cube.blend"), nil)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInsufficientStorage || apiErr.Code != client.CodeStorageFull {
		t.Fatalf("upload to a full disk = %v, want 507 STORAGE_FULL", err)
	}
	if after := uploads(); len(after) != len(before) {
		t.Errorf("files under uploads/ = %v after the refused upload, want %v", after, before)
	}

	// 8 MiB free: less than the node keeps.
	info, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, info.Size()-8<<20); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Render(ctx, job.ID, slowRender("1-3")); err != nil {
		t.Fatal(err)
	}
	until(t, time.Minute, "the progress says the job waits for disk space", func() bool {
		p, err := c.Progress(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p.WaitingFor == "disk space on tmpfs-node"
	})
	if body := getWithBearer(t, f.URL+"/metrics", "tok", http.StatusOK); !strings.Contains(body, `renderfarm_tasks_waiting{part="disk"} 1`) {
		t.Errorf("/metrics does not count the task waiting for disk space")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("job = %v, %v; want completed once space was freed", done, err)
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range p.Frames {
		if fr.Status != client.FrameCompleted || fr.Attempts != 1 {
			t.Errorf("frame %d = %s after %d attempts, want completed on the first", fr.Frame, fr.Status, fr.Attempts)
		}
	}
	if _, err := c.UploadFile(ctx, scene("cube.blend"), nil); err != nil {
		t.Errorf("upload once space was freed: %v", err)
	}
	checkTaskInvariant(t, f)
}

// fill writes zeros to path until the disk it is on is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// The last, partial block too.
	for _, n := range []int{64 << 10, 4 << 10, 512} {
		for {
			if _, err := f.Write(block[:n]); err != nil {
				break
			}
		}
	}
}

// TestAFullDatabaseAnswers507: SQLite that cannot grow ("database or disk
// is full", as on a full disk) makes POST /uploads answer 507
// STORAGE_FULL, not 500; once it can grow again, uploads go on.
func TestAFullDatabaseAnswers507(t *testing.T) {
	f := startFarm(t, "--workers", "0", "--rate-limit", "0")
	c := f.client("studio")
	ctx := testContext(t)
	db := f.Main().Store().DB()
	// The farm's one SQLite connection that writes may not grow the file.
	if _, err := db.ExecContext(ctx, `PRAGMA max_page_count = 1`); err != nil {
		t.Fatal(err)
	}
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		_, refused = c.CreateUpload(ctx, "scene.blend", client.FileTypeBlend)
	}
	var apiErr *client.APIError
	if !errors.As(refused, &apiErr) || apiErr.StatusCode != http.StatusInsufficientStorage || apiErr.Code != client.CodeStorageFull {
		t.Fatalf("POST /uploads on a full database = %v, want 507 STORAGE_FULL", refused)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUpload(ctx, "scene.blend", client.FileTypeBlend); err != nil {
		t.Errorf("POST /uploads once the database may grow again: %v", err)
	}
}
