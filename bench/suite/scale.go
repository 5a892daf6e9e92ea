package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	"github.com/renderfarm/renderfarm/client"
)

// ---- 5. scale: a 10,000-frame job; 1, 2 and 4 workers ----

const longFrames = 10_000

// longRender is a 10,000-frame job of a trivial scene: its frames take
// Blender hundredths of a second, so what is left is the farm's cost of
// each chunk.
var longRender = renderSettings{frames: "1-10000", width: 32, height: 18, samples: 1}

// longWindow is how long the 10,000-chunk job runs before it is canceled:
// long enough for a few dozen chunks.
const longWindow = 10 * time.Second

// workersRender is a job whose frames take Blender about a second each on
// one of these cores' machines when it is idle.
var workersRender = renderSettings{frames: "1-8", width: 320, height: 180, samples: 96}

const workersFrames = 8

// workersCase is a number of render workers in one serve, and the threads
// each Blender renders with (0: all cores).
type workersCase struct{ workers, threads int }

func (c workersCase) String() string {
	if c.threads == 0 {
		return fmt.Sprintf("%d, Blender on all cores", c.workers)
	}
	return fmt.Sprintf("%d, Blender on %d thread", c.workers, c.threads)
}

// workersCases are 1, 2 and 4 workers as the farm runs by default, and 1
// and 2 with one thread each: on a machine whose cores one Blender already
// keeps busy, only the second pair can show workers running side by side.
var workersCases = []workersCase{{1, 0}, {2, 0}, {4, 0}, {1, 1}, {2, 1}}

type scheduleRun struct {
	postChunk1, postDefault       time.Duration // the render request
	cancelChunk1, cancelDefault   time.Duration // the cancel request
	handOut, bookkeeping, blender []time.Duration
	chunksPerSecond               float64
}

type workersRun struct {
	lastFrame, completed time.Duration
	blenderPerFrame      time.Duration
}

func (b *bench) measureScale() {
	fmt.Printf("\n== 5. scale: scheduling a %s-frame job; render time with 1, 2 and 4 workers\n", thousands(longFrames))
	meter := benchkit.StartCPUMeter()
	long := b.longScene(longFrames)

	f := b.localFarm("scale")
	f.serve("--workers", "1")
	var sched []scheduleRun
	for run := 1; run <= b.runs; run++ {
		s := b.scheduleOnce(f, long)
		sched = append(sched, s)
		fmt.Printf("scale run %d: POST render of %s frames: %s at chunkSize 1 (%s chunks), %s at the default chunkSize (%d chunks); cancel %s and %s; %.2f chunks/s taken, hand-out %s, bookkeeping %s, Blender around the frames %s a chunk\n",
			run, thousands(longFrames), secs(s.postChunk1), thousands(longFrames), secs(s.postDefault), longFrames/100,
			secs(s.cancelChunk1), secs(s.cancelDefault), s.chunksPerSecond, millis(benchkit.MedianOf(s.handOut)), millis(benchkit.MedianOf(s.bookkeeping)), secs(benchkit.MedianOf(s.blender)))
	}
	f.Stop()
	schedMeter := meter.Report()

	meter = benchkit.StartCPUMeter()
	workers := map[workersCase][]workersRun{}
	for run := 1; run <= b.runs; run++ {
		for i := range workersCases {
			wc := workersCases[(i+run-1)%len(workersCases)]
			n := wc.workers
			f := b.localFarm("workers")
			f.serve("--workers", fmt.Sprint(n), "--blender-threads", fmt.Sprint(wc.threads))
			job := f.validatedJob(b.scene)
			chunk := (workersFrames + n - 1) / n
			r := f.render(job, workersRender, (workersFrames+chunk-1)/chunk)
			f.Stop()
			var last time.Time
			for _, c := range r.chunks {
				if c.lastStored().After(last) {
					last = c.lastStored()
				}
			}
			w := workersRun{lastFrame: last.Sub(r.requested), completed: r.completed.Sub(r.requested),
				blenderPerFrame: time.Duration(r.job.NormalizedSeconds * float64(time.Second) / workersFrames)}
			workers[wc] = append(workers[wc], w)
			fmt.Printf("scale run %d, workers %s: last frame stored after %s, completed after %s; Blender's own time a frame %s\n",
				run, wc, secs(w.lastFrame), secs(w.completed), secs(w.blenderPerFrame))
		}
	}

	postChunk1 := benchkit.Median(sched, func(s scheduleRun) time.Duration { return s.postChunk1 })
	postDefault := benchkit.Median(sched, func(s scheduleRun) time.Duration { return s.postDefault })
	var handOut, bookkeeping, blender []time.Duration
	var rates []float64
	for _, s := range sched {
		handOut = append(handOut, s.handOut...)
		bookkeeping = append(bookkeeping, s.bookkeeping...)
		blender = append(blender, s.blender...)
		rates = append(rates, s.chunksPerSecond)
	}
	perChunk := benchkit.MedianOf(handOut) + benchkit.MedianOf(bookkeeping)

	var out strings.Builder
	fmt.Fprintf(&out, "5. Scale, serve --workers 1 on SQLite. A job of %s frames of a trivial scene (%dx%d, %d sample): the render request (every frame, chunk and River job written in one transaction), the cancel request, and, while it ran for %s at chunkSize 1, what each chunk cost besides Blender's rendering:\n\n",
		thousands(longFrames), longRender.width, longRender.height, longRender.samples, longWindow)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\ttime\tper frame")
	fmt.Fprintf(tw, "POST render, chunkSize 1 (%s chunks)\t%s\t%.0f µs\n", thousands(longFrames), secs(postChunk1), float64(postChunk1.Microseconds())/longFrames)
	fmt.Fprintf(tw, "POST render, the farm's chunkSize (100: %d chunks)\t%s\t%.0f µs\n", longFrames/100, secs(postDefault), float64(postDefault.Microseconds())/longFrames)
	fmt.Fprintf(tw, "POST cancel, %s queued chunks\t%s\t%.0f µs\n", thousands(longFrames), secs(benchkit.Median(sched, func(s scheduleRun) time.Duration { return s.cancelChunk1 })),
		float64(benchkit.Median(sched, func(s scheduleRun) time.Duration { return s.cancelChunk1 }).Microseconds())/longFrames)
	fmt.Fprintf(tw, "POST cancel, %d queued chunks\t%s\t-\n", longFrames/100, secs(benchkit.Median(sched, func(s scheduleRun) time.Duration { return s.cancelDefault })))
	tw.Flush()
	fmt.Fprintf(&out, "\nPer chunk, with %s chunks queued (medians of %d chunks): River handing out the next chunk (from one chunk's end to the next taken) %s; the worker's bookkeeping (claiming, moving the job, closing the chunk) %s; Blender's time around the chunk's frames (in a warm session: from the command to its first frame, and from its last frame to the end of the command) %s; %.2f chunks a second. For the whole job at chunkSize 1 that is %s of hand-out and bookkeeping and %s of Blender around the frames, against %s and %s at the farm's chunkSize of 100.\n",
		thousands(longFrames), len(handOut), millis(benchkit.MedianOf(handOut)), millis(benchkit.MedianOf(bookkeeping)), secs(benchkit.MedianOf(blender)), benchkit.MedianFloat(rates),
		duration(perChunk*longFrames), duration(benchkit.MedianOf(blender)*longFrames), duration(perChunk*longFrames/100), duration(benchkit.MedianOf(blender)*longFrames/100))
	fmt.Fprintf(&out, "\n%s\n", schedMeter)

	fmt.Fprintf(&out, "\nRender time of %d frames of %s (%dx%d, %d samples), from the render request to completed, serve --workers N on SQLite (N chunks at once, the farm's chunkSize: %d frames / N), on these %s; the speed-up is against 1 worker with the same threads:\n\n",
		workersFrames, filepath.Base(b.scene), workersRender.width, workersRender.height, workersRender.samples, workersFrames, coresNote())
	tw = tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workers\tBlender's time a frame\tlast frame stored\tcompleted\tspeed-up\tspeed-up per worker")
	completed := func(wc workersCase) time.Duration {
		return benchkit.Median(workers[wc], func(w workersRun) time.Duration { return w.completed })
	}
	for _, wc := range workersCases {
		one := completed(workersCase{1, wc.threads})
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%.2f\n", wc,
			secs(benchkit.Median(workers[wc], func(w workersRun) time.Duration { return w.blenderPerFrame })),
			secs(benchkit.Median(workers[wc], func(w workersRun) time.Duration { return w.lastFrame })), secs(completed(wc)),
			one.Seconds()/completed(wc).Seconds(), one.Seconds()/completed(wc).Seconds()/float64(wc.workers))
	}
	tw.Flush()
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	b.detail(out.String())

	b.result(result{"5", fmt.Sprintf("POST render, %s frames, chunkSize 1 / the farm's (100)", thousands(longFrames)),
		fmt.Sprintf("%s / %s", secs(postChunk1), secs(postDefault)),
		fmt.Sprintf("%.0f / %.0f µs a frame", float64(postChunk1.Microseconds())/longFrames, float64(postDefault.Microseconds())/longFrames), "", "", ""})
	b.result(result{"5", fmt.Sprintf("farm's time a chunk besides Blender, %s chunks queued", thousands(longFrames)),
		millis(perChunk), fmt.Sprintf("Blender around the frames %s", millis(benchkit.MedianOf(blender))), "", "", ""})
	for _, wc := range workersCases {
		one := completed(workersCase{1, wc.threads})
		b.result(result{"5", fmt.Sprintf("%d frames of ~1 s, workers %s, request → completed", workersFrames, wc), secs(completed(wc)),
			"1 worker " + secs(one), fmt.Sprintf("%.2f", one.Seconds()/completed(wc).Seconds()), "", ""})
	}
}

// scheduleOnce renders the long scene at chunkSize 1 for a while and
// cancels it, then asks for it at the farm's chunkSize and cancels that at
// once.
func (b *bench) scheduleOnce(f *farm, long string) scheduleRun {
	ctx, c := b.Ctx, f.client()
	var s scheduleRun
	job := f.validatedJob(long)
	r := longRender
	r.chunk = 1
	start := time.Now()
	if _, _, err := c.Render(ctx, job, r.config()); err != nil {
		benchkit.Fatalf("render: %v", err)
	}
	s.postChunk1 = time.Since(start)
	b.Sleep(longWindow)
	start = time.Now()
	if _, err := c.Cancel(ctx, job); err != nil {
		benchkit.Fatalf("cancel: %v", err)
	}
	s.cancelChunk1 = time.Since(start)
	if _, err := c.Wait(ctx, job, client.UntilFinal, nil); err != nil && !strings.Contains(err.Error(), "canceled") {
		benchkit.Fatalf("wait: %v", err)
	}
	chunks := f.chunks(job, 0)
	if len(chunks) < 3 {
		benchkit.Fatalf("only %d chunks of the long job ended in %s:\n%s", len(chunks), longWindow, f.Logs())
	}
	for i, ch := range chunks {
		s.bookkeeping = append(s.bookkeeping, ch.bookkeeping())
		s.blender = append(s.blender, ch.BlenderStart+ch.BlenderExit)
		if i > 0 {
			s.handOut = append(s.handOut, ch.start().Sub(chunks[i-1].At))
		}
	}
	s.chunksPerSecond = float64(len(chunks)-1) / chunks[len(chunks)-1].At.Sub(chunks[0].At).Seconds()

	job = f.validatedJob(long)
	start = time.Now()
	if _, _, err := c.Render(ctx, job, longRender.config()); err != nil {
		benchkit.Fatalf("render: %v", err)
	}
	s.postDefault = time.Since(start)
	start = time.Now()
	if _, err := c.Cancel(ctx, job); err != nil {
		benchkit.Fatalf("cancel: %v", err)
	}
	s.cancelDefault = time.Since(start)
	if _, err := c.Wait(ctx, job, client.UntilFinal, nil); err != nil && !strings.Contains(err.Error(), "canceled") {
		benchkit.Fatalf("wait: %v", err)
	}
	return s
}

// longScene saves the scene with frames 1 to n, for jobs of n frames.
func (b *bench) longScene(n int) string {
	path := filepath.Join(b.TempDir("long"), "long.blend")
	expr := fmt.Sprintf("import bpy\nbpy.context.scene.frame_end = %d\nbpy.ops.wm.save_as_mainfile(filepath=%q, compress=True)\n", n, path)
	cmd := exec.CommandContext(b.Ctx, "blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", b.scene, "--python-expr", expr)
	if out, err := cmd.CombinedOutput(); err != nil {
		benchkit.Fatalf("save a %d-frame scene: %v\n%s", n, err, out)
	}
	return path
}

// duration writes a long time in minutes when it is one.
func duration(d time.Duration) string {
	if d >= 2*time.Minute {
		return fmt.Sprintf("%.1f min", d.Minutes())
	}
	return secs(d)
}

func coresNote() string {
	return fmt.Sprintf("%d cores", runtime.NumCPU())
}
