// Command distributed measures the farm in its distributed shape, on
// PostgreSQL and an S3-compatible bucket, with `renderfarm serve` and
// `renderfarm worker` processes all on this machine:
//
//   - scale: the render time of the same frames with one worker and with
//     two, and their ratio;
//   - death: the time from a worker's SIGKILL to its unfinished chunk being
//     handed out again, at each --worker-timeout asked for, and once more
//     when the worker killed is River's leader;
//   - queue: from the render request to the first chunk picked up and to
//     the first frame rendering, and from the last frame stored to the job
//     completed, on SQLite and on PostgreSQL.
//
// It reads RENDERFARM_TEST_POSTGRES, RENDERFARM_TEST_S3_ENDPOINT and the
// AWS_* variables as the end-to-end tests do (scripts/services.sh starts
// both servers and sets them), creates its own databases and bucket, and
// removes them when it ends. Every measurement runs -runs times, the runs
// of the cases interleaved; the tables show medians.
//
//	go run ./bench/distributed [-runs 3] [-only scale,death,queue] [-timeouts 5s,15s]
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
	"github.com/renderfarm/renderfarm/internal/testbackends"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/renderfarm/renderfarm/client"
)

func main() {
	runs := flag.Int("runs", 3, "how many times to measure each case (the median is reported)")
	only := flag.String("only", "scale,death,queue", "which measurements to run, comma-separated")
	timeouts := flag.String("timeouts", "5s,15s", "the --worker-timeout values the death measurement uses")
	scene := flag.String("scene", "testdata/scenes/cube.blend", "the .blend to render")
	frames := flag.Int("frames", 16, "frames to render in scale and death (1..N of the scene)")
	chunk := flag.Int("chunk", 2, "chunkSize of every render")
	size := flag.String("size", "320x180", "resolution WxH")
	samples := flag.Int("samples", 32, "Cycles samples")
	flag.Parse()

	r := renderSettings{frames: *frames, chunk: *chunk, samples: *samples}
	if _, err := fmt.Sscanf(*size, "%dx%d", &r.width, &r.height); err != nil {
		benchkit.Fatalf("-size %q: want WxH", *size)
	}
	var deathTimeouts []time.Duration
	for _, s := range strings.Split(*timeouts, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			benchkit.Fatalf("-timeouts: %q is not a duration", s)
		}
		deathTimeouts = append(deathTimeouts, d)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := setUp(ctx, *scene, r)
	defer b.tearDown()

	fmt.Printf("machine: %d cores, %s; load average at start: %s\n\n", runtime.NumCPU(), benchkit.CPUModel(), benchkit.LoadAverage())
	var report []string
	if want["scale"] {
		report = append(report, b.measureScale(*runs))
	}
	if want["death"] {
		report = append(report, b.measureDeath(*runs, deathTimeouts))
	}
	if want["queue"] {
		report = append(report, b.measureQueue(*runs))
	}
	fmt.Printf("\n%d cores (%s), %d runs of each case, medians; load average at the end: %s\n\n", runtime.NumCPU(), benchkit.CPUModel(), *runs, benchkit.LoadAverage())
	fmt.Print(strings.Join(report, "\n"))
}

// renderSettings are the frames and settings every render uses.
type renderSettings struct {
	frames, chunk, width, height, samples int
}

func (r renderSettings) config(frames int) client.RenderConfig {
	return client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{fmt.Sprintf("1-%d", frames)},
		Resolution:            []int{r.width, r.height},
		SampleCount:           client.Int(r.samples),
		ChunkSize:             client.Int(r.chunk),
	}
}

func (r renderSettings) String() string {
	return fmt.Sprintf("%dx%d, %d samples, chunkSize %d", r.width, r.height, r.samples, r.chunk)
}

// ---- scale: one worker against two ----

type scaleCase struct {
	workers int
	threads int // --blender-threads; 0 is all cores
}

type scaleResult struct {
	lastFrame, completed time.Duration
}

func (b *bench) measureScale(runs int) string {
	cases := []scaleCase{{1, 0}, {2, 0}, {1, 1}, {2, 1}}
	results := map[scaleCase][]scaleResult{}
	meter := benchkit.StartCPUMeter()
	for run := 1; run <= runs; run++ {
		for _, c := range cases {
			res, perWorker := b.scaleRun(c)
			results[c] = append(results[c], res)
			fmt.Printf("scale run %d, %d worker(s), --blender-threads %d: last frame stored after %.2f s, completed after %.2f s; frames per worker %v\n",
				run, c.workers, c.threads, res.lastFrame.Seconds(), res.completed.Seconds(), perWorker)
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "Render time of %d frames of %s (%s), from the render request, serve --workers 0 plus 1 or 2 workers on the same %d cores:\n\n",
		b.render.frames, filepath.Base(b.scene), b.render, runtime.NumCPU())
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "blender threads per worker\t1 worker: last frame\t2 workers: last frame\tratio\t1 worker: completed\t2 workers: completed\tratio")
	for _, threads := range []int{0, 1} {
		one, two := results[scaleCase{1, threads}], results[scaleCase{2, threads}]
		oneLast := benchkit.Median(one, func(r scaleResult) time.Duration { return r.lastFrame })
		twoLast := benchkit.Median(two, func(r scaleResult) time.Duration { return r.lastFrame })
		oneDone := benchkit.Median(one, func(r scaleResult) time.Duration { return r.completed })
		twoDone := benchkit.Median(two, func(r scaleResult) time.Duration { return r.completed })
		label := fmt.Sprint(threads)
		if threads == 0 {
			label = "all cores (0)"
		}
		fmt.Fprintf(tw, "%s\t%.2f s\t%.2f s\t%.2f\t%.2f s\t%.2f s\t%.2f\n", label,
			oneLast.Seconds(), twoLast.Seconds(), oneLast.Seconds()/twoLast.Seconds(),
			oneDone.Seconds(), twoDone.Seconds(), oneDone.Seconds()/twoDone.Seconds())
	}
	tw.Flush()
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	return out.String()
}

func (b *bench) scaleRun(c scaleCase) (scaleResult, map[string]int) {
	f := b.distributedFarm("scale", "--worker-timeout", "60s")
	defer f.Stop()
	f.Serve("api-a", "--workers", "0")
	for i := range c.workers {
		f.Worker(nodeName(i), "--blender-threads", fmt.Sprint(c.threads))
	}
	cl, job := f.validatedJob()
	start := time.Now()
	if _, _, err := cl.Render(b.Ctx, job, b.render.config(b.render.frames)); err != nil {
		benchkit.Fatalf("render: %v", err)
	}
	var res scaleResult
	var last *client.Progress
	for {
		p, err := cl.Progress(b.Ctx, job)
		if err != nil {
			benchkit.Fatalf("progress: %v", err)
		}
		now := time.Since(start)
		if res.lastFrame == 0 && p.FramesCompleted == p.FramesTotal {
			res.lastFrame = now
		}
		last = p
		if p.Status == client.StatusCompleted {
			res.completed = now
			break
		}
		if p.Status.IsFinal() {
			benchkit.Fatalf("scale: job ended %s:\n%s", p.Status, f.Logs())
		}
		b.Sleep(20 * time.Millisecond)
	}
	return res, framesPerWorker(last)
}

// ---- death: a worker killed mid-render ----

type deathCase struct {
	timeout    time.Duration
	leaderDies bool // the worker killed is River's leader
}

func (c deathCase) String() string {
	s := fmt.Sprintf("--worker-timeout %s", c.timeout)
	if c.leaderDies {
		s += ", the killed worker is River's leader"
	}
	return s
}

type deathResult struct {
	requeued    time.Duration // from the kill to the chunk handed out again
	completed   time.Duration // from the kill to the job completed
	leaderMoved time.Duration // from the kill to another process leading (0: it did not move)
}

func (b *bench) measureDeath(runs int, timeouts []time.Duration) string {
	var cases []deathCase
	for _, t := range timeouts {
		cases = append(cases, deathCase{timeout: t})
	}
	cases = append(cases, deathCase{timeout: timeouts[0], leaderDies: true})
	results := map[deathCase][]deathResult{}
	meter := benchkit.StartCPUMeter()
	for run := 1; run <= runs; run++ {
		for _, c := range cases {
			res := b.deathRun(c)
			results[c] = append(results[c], res)
			fmt.Printf("death run %d, %s: handed out again %.2f s after the kill; job completed %.2f s after it", run, c, res.requeued.Seconds(), res.completed.Seconds())
			if res.leaderMoved > 0 {
				fmt.Printf("; leadership moved after %.2f s", res.leaderMoved.Seconds())
			}
			fmt.Println()
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "A worker killed with SIGKILL while it renders a chunk (%d frames, %s; serve --workers 0 plus 2 workers): time from the kill to its chunk being handed out again (a new generation), and to the job completed (the chunk rendered by the other worker):\n\n",
		b.render.frames, b.render)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\thanded out again\tover the timeout\texpected range\tjob completed")
	for _, c := range cases {
		rs := results[c]
		requeued := benchkit.Median(rs, func(r deathResult) time.Duration { return r.requeued })
		completed := benchkit.Median(rs, func(r deathResult) time.Duration { return r.completed })
		// The last heartbeat is up to one interval old at the kill, and the
		// reaper looks every timeout/4.
		// The leader's death adds River's re-election, which this does
		// not model.
		heartbeat := min(5*time.Second, c.timeout/4)
		reap := max(time.Second, c.timeout/4)
		expected := fmt.Sprintf("%.2f to %.2f s", (c.timeout - heartbeat).Seconds(), (c.timeout + reap).Seconds())
		if c.leaderDies {
			expected = "-"
		}
		fmt.Fprintf(tw, "%s\t%.2f s\t%+.2f s\t%s\t%.2f s\n", c, requeued.Seconds(), (requeued - c.timeout).Seconds(), expected, completed.Seconds())
	}
	tw.Flush()
	for _, c := range cases {
		if c.leaderDies {
			moved := benchkit.Median(results[c], func(r deathResult) time.Duration { return r.leaderMoved })
			fmt.Fprintf(&out, "\nWith the leader killed, another process took the lead %.2f s after the kill.\n", moved.Seconds())
		}
	}
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	return out.String()
}

// deathRun kills node-a while it holds a chunk with frames still to store.
// Should it hold none at the moment of the kill (it stored the chunk's
// last frame in between), the run is done again on a fresh farm.
func (b *bench) deathRun(c deathCase) deathResult {
	for try := 1; ; try++ {
		res, ok := b.deathTry(c)
		if ok {
			return res
		}
		if try == 3 {
			benchkit.Fatalf("death: node-a held no unfinished chunk when it was killed, three times in a row")
		}
		fmt.Println("death: node-a held no unfinished chunk when it was killed; again")
	}
}

func (b *bench) deathTry(c deathCase) (deathResult, bool) {
	f := b.distributedFarm("death", "--worker-timeout", c.timeout.String())
	defer f.Stop()
	// River's leader is the first process to start: start the worker first
	// to kill the leader, the API first otherwise.
	if c.leaderDies {
		f.Worker("node-a")
		f.waitLeader()
		f.Serve("api-a", "--workers", "0")
	} else {
		f.Serve("api-a", "--workers", "0")
		f.waitLeader()
		f.Worker("node-a")
	}
	f.Worker("node-b")
	leader := f.leader()

	cl, job := f.validatedJob()
	if _, _, err := cl.Render(b.Ctx, job, b.render.config(b.render.frames)); err != nil {
		benchkit.Fatalf("render: %v", err)
	}
	// Mid-render: both nodes have stored frames, and node-a holds a chunk
	// with frames still to store.
	b.WaitFor("both workers to store frames", 2*time.Minute, func() bool {
		p, err := cl.Progress(b.Ctx, job)
		if err != nil {
			benchkit.Fatalf("progress: %v", err)
		}
		n := framesPerWorker(p)
		return n["node-a"] > 0 && n["node-b"] > 0
	})
	nodeA := f.workerRun("node-a")
	for deadline := time.Now().Add(time.Minute); len(f.heldTasks(nodeA)) == 0; b.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return deathResult{}, false
		}
	}
	killed := time.Now()
	f.Proc("node-a").Kill()
	held := f.heldTasks(nodeA) // what it held when it died
	if len(held) == 0 {
		return deathResult{}, false
	}

	var res deathResult
	for res.requeued == 0 || res.completed == 0 {
		if res.requeued == 0 && f.requeued(held) {
			res.requeued = time.Since(killed)
		}
		if res.leaderMoved == 0 && c.leaderDies {
			if now := f.leader(); now != "" && now != leader {
				res.leaderMoved = time.Since(killed)
			}
		}
		if res.completed == 0 {
			j, err := cl.GetJob(b.Ctx, job)
			if err != nil {
				benchkit.Fatalf("get job: %v", err)
			}
			if j.Status.IsFinal() {
				if j.Status != client.StatusCompleted {
					benchkit.Fatalf("death: job ended %s: %+v\n%s", j.Status, j.FailedReason, f.Logs())
				}
				res.completed = time.Since(killed)
			}
		}
		if time.Since(killed) > c.timeout+3*time.Minute {
			benchkit.Fatalf("death: %s after the kill, handed out again: %v, completed: %v\n%s", time.Since(killed), res.requeued > 0, res.completed > 0, f.Logs())
		}
		b.Sleep(10 * time.Millisecond)
	}
	f.checkEveryFrameOnce(cl, job, b.render.frames)
	return res, true
}

// ---- queue: PostgreSQL against SQLite ----

type queueCase struct {
	name  string
	start func(*bench) *farm
}

type queueResult struct {
	pickedUp, firstFrame, finalized time.Duration
}

func (b *bench) measureQueue(runs int) string {
	cases := []queueCase{
		{"SQLite, local files: serve --workers 1", func(b *bench) *farm {
			f := b.localFarm("queue")
			f.Serve("api-a", "--workers", "1", "--worker-name", "node-a")
			return f
		}},
		{"PostgreSQL, bucket: serve --workers 0 + worker", func(b *bench) *farm {
			f := b.distributedFarm("queue")
			f.Serve("api-a", "--workers", "0")
			f.Worker("node-a")
			return f
		}},
		{"PostgreSQL, bucket: serve --workers 1", func(b *bench) *farm {
			f := b.distributedFarm("queue")
			f.Serve("api-a", "--workers", "1", "--worker-name", "node-a")
			return f
		}},
		{"PostgreSQL, local files: serve --workers 1", func(b *bench) *farm {
			f := b.postgresLocalFarm("queue")
			f.Serve("api-a", "--workers", "1", "--worker-name", "node-a")
			return f
		}},
	}
	const frames = 4
	results := map[string][]queueResult{}
	meter := benchkit.StartCPUMeter()
	for run := 1; run <= runs; run++ {
		for _, c := range cases {
			res := b.queueRun(c, frames)
			results[c.name] = append(results[c.name], res)
			fmt.Printf("queue run %d, %s: picked up after %.0f ms, first frame rendering after %.0f ms, last frame to completed %.0f ms\n",
				run, c.name, benchkit.Ms(res.pickedUp), benchkit.Ms(res.firstFrame), benchkit.Ms(res.finalized))
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "Queue latency, one worker, %d frames (%s), progress polled every 10 ms: from the render request to the job rendering (a worker took the first chunk) and to the first frame rendering (Blender started on it); from the last frame stored to the job completed (the finalize work queued, picked up, zip and preview made):\n\n",
		frames, b.render)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "farm\trequest to picked up\trequest to first frame rendering\tlast frame to completed")
	for _, c := range cases {
		rs := results[c.name]
		fmt.Fprintf(tw, "%s\t%.0f ms\t%.0f ms\t%.0f ms\n", c.name,
			benchkit.Ms(benchkit.Median(rs, func(r queueResult) time.Duration { return r.pickedUp })),
			benchkit.Ms(benchkit.Median(rs, func(r queueResult) time.Duration { return r.firstFrame })),
			benchkit.Ms(benchkit.Median(rs, func(r queueResult) time.Duration { return r.finalized })))
	}
	tw.Flush()
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	return out.String()
}

func (b *bench) queueRun(c queueCase, frames int) queueResult {
	f := c.start(b)
	defer f.Stop()
	cl, job := f.validatedJob()
	start := time.Now()
	if _, _, err := cl.Render(b.Ctx, job, b.render.config(frames)); err != nil {
		benchkit.Fatalf("render: %v", err)
	}
	var res queueResult
	var lastFrame time.Duration
	for {
		p, err := cl.Progress(b.Ctx, job)
		if err != nil {
			benchkit.Fatalf("progress: %v", err)
		}
		now := time.Since(start)
		if res.pickedUp == 0 && p.Status != client.StatusBooting {
			res.pickedUp = now
		}
		if res.firstFrame == 0 && slices.ContainsFunc(p.Frames, func(f client.FrameProgress) bool {
			return f.Status == client.FrameRendering || f.Status == client.FrameCompleted
		}) {
			res.firstFrame = now
		}
		if lastFrame == 0 && p.FramesCompleted == p.FramesTotal {
			lastFrame = now
		}
		if p.Status == client.StatusCompleted {
			res.finalized = now - lastFrame
			return res
		}
		if p.Status.IsFinal() {
			benchkit.Fatalf("queue: job ended %s:\n%s", p.Status, f.Logs())
		}
		b.Sleep(10 * time.Millisecond)
	}
}

// ---- the services, the farms and their processes ----
// bench holds what every measurement shares: the lab (the binary, the work
// directory, PostgreSQL and the bucket), the scene and the render.
type bench struct {
	*benchkit.Lab
	scene  string
	render renderSettings
}

func setUp(ctx context.Context, scene string, r renderSettings) *bench {
	if os.Getenv(testbackends.PostgresEnv) == "" || os.Getenv(testbackends.S3EndpointEnv) == "" {
		benchkit.Fatalf("%v", testbackends.ErrNotConfigured)
	}
	if _, err := os.Stat(scene); err != nil {
		benchkit.Fatalf("scene: %v (run from the repository's root)", err)
	}
	return &bench{Lab: benchkit.NewLab(ctx), scene: scene, render: r}
}

func (b *bench) tearDown() { benchkit.RunExits() }

// farm is one farm of these measurements.
type farm struct {
	*benchkit.Farm
	b *bench
}

// distributedFarm is a farm on a fresh PostgreSQL database and its own
// prefix of the bucket.
func (b *bench) distributedFarm(name string, extra ...string) *farm {
	return &farm{Farm: b.PostgresFarm(name, true, extra...), b: b}
}

// postgresLocalFarm is one process on PostgreSQL with its objects on this
// machine's disk.
func (b *bench) postgresLocalFarm(name string) *farm {
	return &farm{Farm: b.PostgresFarm(name, false), b: b}
}

// localFarm is the one-machine shape: SQLite and files under --data-dir.
func (b *bench) localFarm(name string) *farm { return &farm{Farm: b.LocalFarm(name), b: b} }

func (f *farm) client() *client.Client { return f.Client(50 * time.Millisecond) }

// validatedJob is a validated job of the bench's scene, and a client.
func (f *farm) validatedJob() (*client.Client, string) {
	c := f.client()
	return c, f.ValidatedJob(c, f.b.scene)
}

// checkEveryFrameOnce makes sure the job stored each frame exactly once.
func (f *farm) checkEveryFrameOnce(c *client.Client, job string, frames int) {
	dl, err := c.Downloads(f.b.Ctx, job)
	if err != nil {
		benchkit.Fatalf("downloads: %v", err)
	}
	seen := map[string]bool{}
	for _, o := range dl.FrameOutputs {
		if seen[o.FileName] {
			benchkit.Fatalf("frame %s is listed twice", o.FileName)
		}
		seen[o.FileName] = true
	}
	if len(seen) != frames {
		benchkit.Fatalf("the job stored %d frames, want %d", len(seen), frames)
	}
}

// waitLeader waits until one of the farm's River clients leads.
func (f *farm) waitLeader() {
	f.b.WaitFor("a River leader", 30*time.Second, func() bool { return f.leader() != "" })
}

// leader is the id of River's leader, "" when there is none.
func (f *farm) leader() string {
	var id string
	err := f.DB.QueryRowContext(f.b.Ctx, `SELECT leader_id FROM river_leader WHERE expires_at > now()`).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		benchkit.Fatalf("read river_leader: %v", err)
	}
	return id
}

// workerRun is the id of the current run of the named worker.
func (f *farm) workerRun(name string) string {
	var id string
	err := f.DB.QueryRowContext(f.b.Ctx, `SELECT id FROM workers WHERE name = $1 ORDER BY started_at DESC LIMIT 1`, name).Scan(&id)
	if err != nil {
		benchkit.Fatalf("find worker %s: %v", name, err)
	}
	return id
}

// heldTasks are the tasks a worker run holds that still have frames to
// store, with their generations.
func (f *farm) heldTasks(workerID string) map[string]int {
	rows, err := f.DB.QueryContext(f.b.Ctx, `SELECT t.id, t.generation FROM tasks t
		WHERE t.worker_id = $1 AND t.status = 'running'
		AND EXISTS (SELECT 1 FROM frames f WHERE f.task_id = t.id AND f.status <> 'completed')`, workerID)
	if err != nil {
		benchkit.Fatalf("read tasks: %v", err)
	}
	defer rows.Close()
	held := map[string]int{}
	for rows.Next() {
		var id string
		var gen int
		if err := rows.Scan(&id, &gen); err != nil {
			benchkit.Fatalf("read tasks: %v", err)
		}
		held[id] = gen
	}
	return held
}

// requeued reports whether every one of the tasks has a newer generation
// than it had: it was handed out again.
func (f *farm) requeued(held map[string]int) bool {
	for id, gen := range held {
		var now int
		if err := f.DB.QueryRowContext(f.b.Ctx, `SELECT generation FROM tasks WHERE id = $1`, id).Scan(&now); err != nil {
			benchkit.Fatalf("read task: %v", err)
		}
		if now <= gen {
			return false
		}
	}
	return true
}

// ---- helpers ----

func nodeName(i int) string { return "node-" + string(rune('a'+i)) }

func framesPerWorker(p *client.Progress) map[string]int {
	n := map[string]int{}
	for _, f := range p.Frames {
		if f.Status == client.FrameCompleted {
			n[f.Worker]++
		}
	}
	return n
}
