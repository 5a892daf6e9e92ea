// Command scale measures how many chunks a second the farm hands out and
// starts with hundreds of render slots, and what that costs the database:
// `renderfarm serve` replicas and `renderfarm worker` processes on
// PostgreSQL and the S3 server, all on this machine, render jobs of
// one-frame chunks with a fake Blender (bench/scale/fakeblender) that
// waits -frame-time per frame and writes a small PNG. The farm's own work
// per chunk is real: the dispatch, River's hand-out on the worker run's
// queue, the claim, the frame put into the bucket and recorded, the chunk
// closed and the slot given its next chunk.
//
// Each job is validated through the real API with testdata/scenes/cube.blend
// (a real .blend; the fake answers the inspection as a Blender of the
// version it was built as). Workers run with --sandbox none: bubblewrap's
// start for each of hundreds of fake Blenders would measure bubblewrap.
//
// It reads RENDERFARM_TEST_POSTGRES, RENDERFARM_TEST_S3_ENDPOINT and the
// AWS_* variables as the end-to-end tests do (scripts/services.sh starts
// both servers), creates its own database and bucket, and removes them
// when it ends.
//
//	go run ./bench/scale [-chunks 10000] [-jobs 1] [-slots 200] [-processes 20] [-frame-time 100ms] [-replicas 1] [-database-connections 8]
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// settings are the benchmark's flags.
type settings struct {
	chunks, jobs, slots, processes, replicas, connections int
	frameTime                                             time.Duration
	scene                                                 string
}

func main() {
	var s settings
	flag.IntVar(&s.chunks, "chunks", 10000, "one-frame chunks to render in all")
	flag.IntVar(&s.jobs, "jobs", 1, "jobs the chunks are split between, each in a workspace of its own")
	flag.IntVar(&s.slots, "slots", 200, "render slots in all, spread over -processes workers (--concurrency)")
	flag.IntVar(&s.processes, "processes", 20, "renderfarm worker processes")
	flag.IntVar(&s.replicas, "replicas", 1, "renderfarm serve replicas (--workers 0)")
	flag.IntVar(&s.connections, "database-connections", 8, "--database-connections of every process")
	flag.DurationVar(&s.frameTime, "frame-time", 100*time.Millisecond, "how long the fake Blender takes a frame")
	flag.StringVar(&s.scene, "scene", "testdata/scenes/cube.blend", "the .blend the jobs are made of")
	flag.Parse()
	if s.jobs < 1 || s.chunks < s.jobs || s.processes < 1 || s.slots < s.processes || s.replicas < 1 || s.frameTime <= 0 {
		benchkit.Fatalf("want -jobs ≥ 1, -chunks ≥ -jobs, -processes ≥ 1, -slots ≥ -processes, -replicas ≥ 1, a positive -frame-time")
	}
	if os.Getenv(testbackends.PostgresEnv) == "" || os.Getenv(testbackends.S3EndpointEnv) == "" {
		benchkit.Fatalf("%v", testbackends.ErrNotConfigured)
	}
	if _, err := os.Stat(s.scene); err != nil {
		benchkit.Fatalf("scene: %v (run from the repository's root)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lab := benchkit.NewLab(ctx)
	defer benchkit.RunExits()
	fmt.Println(run(lab, s))
}

func run(lab *benchkit.Lab, s settings) string {
	fake := filepath.Join(lab.Work, "fakeblender")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=3.4.1 -X main.frameTime="+s.frameTime.String(), "-o", fake, "./bench/scale/fakeblender")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		benchkit.Fatalf("build the fake Blender: %v", err)
	}
	f := lab.PostgresFarm("scale", true, "--database-connections", strconv.Itoa(s.connections))
	defer f.Stop()
	f.DB.SetMaxOpenConns(2)
	for i := range s.replicas {
		f.Serve(fmt.Sprintf("api-%d", i+1), "--workers", "0")
	}
	setupStart := time.Now()
	for i := range s.processes {
		// The slots spread as evenly as they go.
		slots := s.slots / s.processes
		if i < s.slots%s.processes {
			slots++
		}
		f.Worker(fmt.Sprintf("node-%03d", i+1), "--concurrency", strconv.Itoa(slots), "--blender", fake, "--sandbox", "none",
			"--log-format", "json")
	}
	lab.WaitFor("every worker registered", time.Minute, func() bool {
		var n int
		if err := f.DB.QueryRowContext(lab.Ctx, `SELECT COUNT(*) FROM workers WHERE state IN ('idle', 'busy')`).Scan(&n); err != nil {
			benchkit.Fatalf("count workers: %v", err)
		}
		return n == s.processes
	})
	// A job per workspace, each through the workspace's own key.
	clients, jobs := []*client.Client{f.Client(500 * time.Millisecond)}, []string{}
	for i := 1; i < s.jobs; i++ {
		out, err := exec.CommandContext(lab.Ctx, lab.Binary, append([]string{"keys", "create", "--workspace", fmt.Sprintf("bench-%d", i+1)}, f.Common...)...).Output()
		if err != nil {
			benchkit.Fatalf("keys create: %v", err)
		}
		clients = append(clients, client.New(f.URL, strings.TrimSpace(string(out)), client.WithPollInterval(500*time.Millisecond)))
	}
	for _, cl := range clients {
		jobs = append(jobs, f.ValidatedJob(cl, s.scene))
	}
	fmt.Fprintf(os.Stderr, "farm up and %d job(s) validated in %.1f s\n", len(jobs), time.Since(setupStart).Seconds())

	procs := map[string][]int{}
	for _, p := range f.Procs() {
		kind := "worker"
		if strings.Contains(filepath.Base(p.LogPath), "-api-") {
			kind = "serve"
		}
		procs[kind] = append(procs[kind], p.Pid())
	}
	// The S3 server, when it runs on this machine: the process that
	// listens on the endpoint's port.
	if pid, ok := listenerOf(os.Getenv(testbackends.S3EndpointEnv)); ok {
		procs["s3"] = []int{pid}
	}
	cpuBefore := map[string]float64{}
	for kind, pids := range procs {
		cpuBefore[kind] = cpuOf(pids)
	}
	meter := benchkit.StartCPUMeter()
	sampler := startSampling(lab.Ctx, f.DB, fake)

	requested := time.Now()
	for i, cl := range clients {
		chunks := s.chunks / s.jobs
		if i < s.chunks%s.jobs {
			chunks++
		}
		if _, _, err := cl.Render(lab.Ctx, jobs[i], client.RenderConfig{
			ColorManagementPreset: client.String("default"),
			FrameRanges:           []string{fmt.Sprintf("1-%d", chunks)},
			ChunkSize:             client.Int(1),
			Resolution:            []int{32, 18},
			SampleCount:           client.Int(1),
		}); err != nil {
			benchkit.Fatalf("render: %v", err)
		}
	}
	requestTook := time.Since(requested)
	// Generous: a farm a hundred times slower than its slots allow still
	// finishes, and is measured.
	limit := time.Duration(s.chunks/s.slots+1)*s.frameTime*100 + 10*time.Minute
	// The wait looks every 100 ms, and down the indexes of the chunks not
	// yet done: a count of every chunk not done, every 10 ms, read the
	// whole table each time and took a third of a core from the farm's
	// database (15 to 20 ms a count at 10,000 chunks). The figures come
	// from the chunks' own times, not from when the wait saw them done.
	lab.WaitForEvery("every chunk done", limit, 100*time.Millisecond, func() bool {
		var left bool
		if err := f.DB.QueryRowContext(lab.Ctx, `SELECT EXISTS (SELECT 1 FROM tasks WHERE kind = 'render' AND status IN ('waiting', 'queued', 'running'))`).Scan(&left); err != nil {
			benchkit.Fatalf("look for chunks not done: %v", err)
		}
		for i, cl := range clients {
			if j, err := cl.GetJob(lab.Ctx, jobs[i]); err == nil && j.Status.IsFinal() && j.Status != client.StatusCompleted {
				benchkit.Fatalf("a job ended %s:\n%s", j.Status, f.Logs())
			}
		}
		return !left
	})
	renderWall := time.Since(requested)
	samples := sampler.stop()
	load := meter.Report()
	cpu := map[string]float64{}
	for kind, pids := range procs {
		cpu[kind] = cpuOf(pids) - cpuBefore[kind]
	}
	out := report(s, readChunks(lab.Ctx, f.DB), samples, cpu, requestTook, renderWall, load)
	// The measurement is over: a stop would wait for the jobs' finalizing
	// (a zip and a preview of every frame), which is not measured here.
	for _, p := range slices.Backward(f.Procs()) {
		p.Kill()
	}
	return out
}

// chunk is one chunk's recorded moments (store.TaskTimes).
type chunk struct {
	worker                                 string
	created, dispatched, started, finished time.Time
	// stored is when its frame was recorded, before the chunk's end.
	stored time.Time
}

// readChunks reads every chunk of the farm's (its own) database.
func readChunks(ctx context.Context, db *sql.DB) []chunk {
	rows, err := db.QueryContext(ctx, `SELECT t.worker_id, t.created_at, t.dispatched_at, t.started_at, t.finished_at,
			(SELECT MAX(f.updated_at) FROM frames f WHERE f.task_id = t.id)
		FROM tasks t WHERE t.kind = 'render' ORDER BY t.started_at`)
	if err != nil {
		benchkit.Fatalf("read chunks: %v", err)
	}
	defer rows.Close()
	var out []chunk
	for rows.Next() {
		var c chunk
		if err := rows.Scan(&c.worker, &c.created, &c.dispatched, &c.started, &c.finished, &c.stored); err != nil {
			benchkit.Fatalf("read chunks: %v", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		benchkit.Fatalf("read chunks: %v", err)
	}
	return out
}

func report(s settings, chunks []chunk, db samples, cpu map[string]float64, requestTook, wall time.Duration, load string) string {
	firstDispatch, lastDispatch, lastFinish := chunks[0].dispatched, chunks[0].dispatched, chunks[0].finished
	var toStart []time.Duration
	byWorker := map[string][]chunk{}
	for _, c := range chunks {
		if c.dispatched.Before(firstDispatch) {
			firstDispatch = c.dispatched
		}
		if c.dispatched.After(lastDispatch) {
			lastDispatch = c.dispatched
		}
		if c.finished.After(lastFinish) {
			lastFinish = c.finished
		}
		toStart = append(toStart, c.started.Sub(c.dispatched))
		byWorker[c.worker] = append(byWorker[c.worker], c)
	}
	// A freed slot's next chunk: on a worker of n slots, its (k+n)-th
	// chunk to start took the slot its k-th chunk to end freed. Measured
	// from the chunk's end (finished_at), and from its frame recorded,
	// which comes before the end whatever the end waits for.
	var slotGap, storedGap []time.Duration
	for _, cs := range byWorker {
		n := s.slots / s.processes
		starts, ends, stored := make([]time.Time, len(cs)), make([]time.Time, len(cs)), make([]time.Time, len(cs))
		for i, c := range cs {
			starts[i], ends[i], stored[i] = c.started, c.finished, c.stored
		}
		for _, ts := range [][]time.Time{starts, ends, stored} {
			slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		}
		for k := 0; k+n < len(starts); k++ {
			slotGap = append(slotGap, starts[k+n].Sub(ends[k]))
			storedGap = append(storedGap, starts[k+n].Sub(stored[k]))
		}
	}
	span := lastFinish.Sub(firstDispatch)
	// The steady state: once every slot had its first chunk, until the
	// last chunk was handed out.
	steadyFrom := firstDispatch.Add(s.frameTime)
	steady := 0
	for _, c := range chunks {
		if !c.dispatched.Before(steadyFrom) {
			steady++
		}
	}
	ideal := float64(s.slots) / s.frameTime.Seconds()

	var out strings.Builder
	fmt.Fprintf(&out, "\nScale: %d one-frame chunks in %d job(s) of as many workspaces, %d render slots in %d worker processes (--concurrency %d), %d serve replica(s) (--workers 0), --database-connections %d, PostgreSQL and the S3 server, a fake Blender of %v a frame; %d cores (%s), %s\n\n",
		s.chunks, s.jobs, s.slots, s.processes, s.slots/s.processes, s.replicas, s.connections, s.frameTime, runtime.NumCPU(), benchkit.CPUModel(), benchkit.MemTotal())
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "what\tmeasured\tgoal\n")
	fmt.Fprintf(tw, "POST render (%d chunks queued in all)\t%.2f s\t-\n", s.chunks, requestTook.Seconds())
	fmt.Fprintf(tw, "chunks a second, first dispatch to last chunk done\t%.0f (in %.1f s)\t≥ 500 (the slots allow %.0f)\n", float64(len(chunks))/span.Seconds(), span.Seconds(), ideal)
	fmt.Fprintf(tw, "chunks dispatched a second, after the first %v\t%.0f\t≥ 500\n", s.frameTime, float64(steady)/lastDispatch.Sub(steadyFrom).Seconds())
	fmt.Fprintf(tw, "queued → started (dispatched_at → started_at) p50 / p99 / max\t%s / %s / %s\tp99 < 100 ms\n", ms(pct(toStart, 50)), ms(pct(toStart, 99)), ms(pct(toStart, 100)))
	fmt.Fprintf(tw, "a chunk ended (finished_at) → its slot's next chunk started, p50 / p99\t%s / %s\t-\n", ms(pct(slotGap, 50)), ms(pct(slotGap, 99)))
	fmt.Fprintf(tw, "a chunk's frame recorded → its slot's next chunk started, p50 / p99\t%s / %s\t-\n", ms(pct(storedGap, 50)), ms(pct(storedGap, 99)))
	fmt.Fprintf(tw, "render request → last chunk done\t%.1f s\t%.1f s at the slots' pace\n", wall.Seconds(), float64(s.chunks)/ideal)
	fmt.Fprintf(tw, "PostgreSQL connections of the farm's database, most at once / most active at once\t%d / %d\tbound: %d processes × (%d + 1) = %d\n",
		db.maxConns, db.maxActive, s.processes+s.replicas, s.connections, (s.processes+s.replicas)*(s.connections+1))
	fmt.Fprintf(tw, "PostgreSQL sessions opened while the jobs rendered (a backend process each)\t%d\t-\n", db.sessions)
	fmt.Fprintf(tw, "active PostgreSQL backends waiting on the dispatcher's lock, of the active ones sampled\t%.0f %%\t-\n", 100*db.lockShare())
	fmt.Fprintf(tw, "active PostgreSQL backends waiting on a row's lock, of the active ones sampled\t%.0f %%\t-\n", 100*db.rowShare())
	fmt.Fprintf(tw, "PostgreSQL CPU (the farm database's backends)\t%.2f cores\t-\n", db.postgresCPU/span.Seconds())
	fmt.Fprintf(tw, "serve replicas' CPU\t%.2f cores\t-\n", cpu["serve"]/span.Seconds())
	fmt.Fprintf(tw, "worker processes' CPU\t%.2f cores (%.2f ms a chunk)\t-\n", cpu["worker"]/span.Seconds(), 1000*cpu["worker"]/float64(len(chunks)))
	fmt.Fprintf(tw, "fake Blenders' CPU\t%.2f cores\t-\n", db.fakeCPU/span.Seconds())
	if s3, ok := cpu["s3"]; ok {
		fmt.Fprintf(tw, "the S3 server's CPU (the process on its port)\t%.2f cores (%.2f ms a chunk)\t-\n", s3/span.Seconds(), 1000*s3/float64(len(chunks)))
	}
	tw.Flush()
	fmt.Fprintf(&out, "\n%s\n", load)
	return out.String()
}

// pct is the p-th percentile of ds (nearest rank); 100 is the maximum.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", benchkit.Ms(d)) }

// ---- sampling the database and the processes ----

// samples is what the sampler saw while the jobs rendered.
type samples struct {
	maxConns, maxActive int
	// activeSeen counts active backends over the samples; lockWaits,
	// those of them waiting for an advisory lock (the dispatcher's), and
	// rowWaits, those waiting for a row another transaction locked.
	activeSeen, lockWaits, rowWaits int
	// sessions is how many connections PostgreSQL opened to the farm's
	// database while the jobs rendered (pg_stat_database.sessions): each
	// costs it a new backend process, which the CPU sampled per backend
	// misses when it ends between two samples.
	sessions             int64
	postgresCPU, fakeCPU float64
}

func (s samples) rowShare() float64 {
	if s.activeSeen == 0 {
		return 0
	}
	return float64(s.rowWaits) / float64(s.activeSeen)
}

func (s samples) lockShare() float64 {
	if s.activeSeen == 0 {
		return 0
	}
	return float64(s.lockWaits) / float64(s.activeSeen)
}

type sampler struct {
	done   chan struct{}
	wg     sync.WaitGroup
	result samples
}

// startSampling reads, every 50 ms, the farm database's connections from
// pg_stat_activity (besides its own), and the CPU of their backends and
// of the fake Blenders from /proc, until stop.
func startSampling(ctx context.Context, db *sql.DB, fake string) *sampler {
	sp := &sampler{done: make(chan struct{})}
	start := time.Now()
	first, last := map[int]float64{}, map[int]float64{}
	sessionsBefore := databaseSessions(ctx, db)
	fakeFirst, fakeLast := map[int]float64{}, map[int]float64{}
	sp.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		tick := 0
		for {
			rows, err := db.QueryContext(ctx, `SELECT pid, backend_start, COALESCE(state, ''), COALESCE(wait_event_type, ''), COALESCE(wait_event, '')
				FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
			if err != nil {
				benchkit.Fatalf("sample pg_stat_activity: %v", err)
			}
			conns, active := 0, 0
			for rows.Next() {
				var pid int
				var born time.Time
				var state, waitType, wait string
				if err := rows.Scan(&pid, &born, &state, &waitType, &wait); err != nil {
					benchkit.Fatalf("sample pg_stat_activity: %v", err)
				}
				conns++
				if state == "active" {
					active++
					sp.result.activeSeen++
					switch {
					case waitType == "Lock" && (wait == "relation" || wait == "advisory"):
						// The dispatcher's lock (a lock on the table
						// dispatch_lock), or an advisory lock of the farm's.
						sp.result.lockWaits++
					case waitType == "Lock" && (wait == "tuple" || wait == "transactionid"):
						sp.result.rowWaits++
					}
				}
				c := procCPU(pid)
				if _, ok := first[pid]; !ok {
					if born.After(start) {
						first[pid] = 0
					} else {
						first[pid] = c
					}
				}
				last[pid] = max(last[pid], c)
			}
			rows.Close()
			sp.result.maxConns = max(sp.result.maxConns, conns)
			sp.result.maxActive = max(sp.result.maxActive, active)
			// /proc is read whole for them: every half second is enough.
			for _, pid := range fakePids(&tick, fake) {
				c := procCPU(pid)
				if _, ok := fakeFirst[pid]; !ok {
					fakeFirst[pid] = c
				}
				fakeLast[pid] = max(fakeLast[pid], c)
			}
			select {
			case <-sp.done:
				sp.result.sessions = databaseSessions(ctx, db) - sessionsBefore
				for pid, c := range last {
					sp.result.postgresCPU += c - first[pid]
				}
				for pid, c := range fakeLast {
					sp.result.fakeCPU += c - fakeFirst[pid]
				}
				return
			case <-t.C:
			}
		}
	})
	return sp
}

// databaseSessions is how many sessions PostgreSQL has opened to db's
// database so far.
func databaseSessions(ctx context.Context, db *sql.DB) int64 {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT sessions FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		benchkit.Fatalf("read pg_stat_database: %v", err)
	}
	return n
}

func (sp *sampler) stop() samples {
	close(sp.done)
	sp.wg.Wait()
	return sp.result
}

// listenerOf finds the process on this machine that listens on the port
// of endpoint (a URL): the listening socket's inode in /proc/net/tcp and
// tcp6, then the process that holds it among its files.
func listenerOf(endpoint string) (int, bool) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Port() == "" {
		return 0, false
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0, false
	}
	var inode string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local address (hex ip:port), state 0A = LISTEN, inode.
			if len(f) > 9 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				inode = f[9]
			}
		}
	}
	if inode == "" {
		return 0, false
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && target == "socket:["+inode+"]" {
				return pid, true
			}
		}
	}
	return 0, false
}

// cpuOf is the CPU seconds the processes pids used so far.
func cpuOf(pids []int) float64 {
	total := 0.0
	for _, pid := range pids {
		total += procCPU(pid)
	}
	return total
}

// procCPU is the CPU seconds (user and system) process pid used so far;
// 0 when it is gone.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command's name is in parentheses and may hold spaces: the
	// fields counted after its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const hz = 100 // USER_HZ on Linux
	return (utime + stime) / hz
}

// fakePids is pidsOf(fake) every tenth tick, none otherwise.
func fakePids(tick *int, fake string) []int {
	*tick++
	if *tick%10 != 1 {
		return nil
	}
	return pidsOf(fake)
}

// pidsOf lists the processes running the executable at path.
func pidsOf(path string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			out = append(out, pid)
		}
	}
	return out
}
