package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// ---- 1. overhead: the farm against Blender by hand ----

// overheadRender is the job of issue 8: 24 frames at 320x180, 32 samples.
var overheadRender = renderSettings{frames: "1-24", width: 320, height: 180, samples: 32}

const overheadFrames = 24

// overheadChunks are the chunk sizes measured; 24 is what the farm picks
// for 24 frames and one worker.
var overheadChunks = []int{24, 4, 1}

// byHand is where the time of `blender -b … -a` went, from its output.
type byHand struct {
	total, start, rendering, exit time.Duration
}

// farmRun is where the time of one render through the farm went, from the
// render request to `completed`. The parts add up to total: queue (request
// to Blender started), Blender starting, rendering, Blender exiting, what
// lies between one chunk's Blender and the next (closing the chunk, River
// handing out the next, preparing it) and finalizing (from the last
// Blender's exit: closing the last chunk, the zip, the preview, completed).
type farmRun struct {
	total, queue, start, rendering, exit, between, finalize time.Duration
	store, record                                           time.Duration // within rendering
	chunks                                                  int
}

func breakdown(r rendered) farmRun {
	cs := r.chunks
	if len(cs) == 0 {
		benchkit.Fatalf("no chunk lines for job %s", r.job.ID)
	}
	fr := farmRun{total: r.completed.Sub(r.requested), queue: cs[0].spawn().Sub(r.requested), chunks: len(cs)}
	for i, c := range cs {
		fr.start += c.BlenderStart
		fr.rendering += c.Rendering
		fr.exit += c.BlenderExit
		fr.store += c.Store
		fr.record += c.Record
		if i > 0 {
			fr.between += c.spawn().Sub(cs[i-1].At)
		}
		if i < len(cs)-1 {
			fr.between += c.bookkeeping() - c.Prepare
		}
	}
	last := cs[len(cs)-1]
	fr.finalize = r.completed.Sub(last.lastStored().Add(last.BlenderExit))
	return fr
}

// overheadMode is how the farm runs Blender for a case: warm sessions (the
// default) or a Blender process per chunk.
type overheadMode struct {
	name string
	args []string
}

var overheadModes = []overheadMode{
	{"warm sessions", nil},
	{"a Blender per chunk", []string{"--blender-keep-alive", "0"}},
}

type overheadCase struct {
	mode  int
	chunk int
}

func (b *bench) measureOverhead() {
	fmt.Printf("== 1. overhead: %d frames of %s (%dx%d, %d samples), through the farm at chunkSize %v with and without warm sessions, against Blender by hand\n",
		overheadFrames, filepath.Base(b.scene), overheadRender.width, overheadRender.height, overheadRender.samples, overheadChunks)
	meter := benchkit.StartCPUMeter()
	var hand []byHand
	farmRuns := map[overheadCase][]farmRun{}
	var startOnly, sandboxed, unconfined []time.Duration
	for run := 1; run <= b.runs; run++ {
		// The parts of a run take turns going first, so that a machine
		// getting busier or quieter during a run weighs on all of them
		// alike: Blender by hand, then each mode's farm.
		parts := len(overheadModes) + 1
		for i := range parts {
			part := (i + run - 1) % parts
			if part == 0 {
				h := b.byHand(overheadRender)
				hand = append(hand, h)
				fmt.Printf("overhead run %d, blender by hand: %s (start %s, rendering %s, exit %s)\n",
					run, secs(h.total), secs(h.start), secs(h.rendering), secs(h.exit))
				continue
			}
			mode := part - 1
			f := b.localFarm("overhead")
			f.serve(append([]string{"--workers", "1"}, overheadModes[mode].args...)...)
			for j := range overheadChunks {
				chunk := overheadChunks[(j+run-1)%len(overheadChunks)]
				// Validated just before its render, as a client does: with
				// warm sessions, the Blender that validated renders.
				job := f.validatedJob(b.scene)
				r := overheadRender
				r.chunk = chunk
				fr := breakdown(f.render(job, r, (overheadFrames+chunk-1)/chunk))
				c := overheadCase{mode, chunk}
				farmRuns[c] = append(farmRuns[c], fr)
				fmt.Printf("overhead run %d, %s, chunkSize %d: %s (queue %s, Blender start %s over %d chunks, rendering %s, exit %s, between chunks %s, finalizing %s)\n",
					run, overheadModes[mode].name, chunk, secs(fr.total), millis(fr.queue), secs(fr.start), fr.chunks, secs(fr.rendering), secs(fr.exit), secs(fr.between), millis(fr.finalize))
			}
			f.Stop()
		}
		startOnly = append(startOnly, b.blenderStartOnly(overheadRender))
		s, u := b.sandboxStart()
		sandboxed, unconfined = append(sandboxed, s), append(unconfined, u)
	}

	med := func(c overheadCase, of func(farmRun) time.Duration) time.Duration {
		return benchkit.Median(farmRuns[c], of)
	}
	direct := benchkit.Median(hand, func(h byHand) time.Duration { return h.total })
	// Each run's farm renders are set against that run's render by hand,
	// made minutes apart on the same machine: the median of those ratios
	// shakes off more of a shared machine's noise than a ratio of medians.
	ratio := func(c overheadCase, of func(farmRun) time.Duration) float64 {
		var rs []float64
		for i, r := range farmRuns[c] {
			rs = append(rs, of(r).Seconds()/hand[i].total.Seconds())
		}
		return benchkit.MedianFloat(rs)
	}
	total := func(r farmRun) time.Duration { return r.total }

	var out strings.Builder
	fmt.Fprintf(&out, "1. Farm overhead: %d frames of %s (%dx%d, %d samples, Cycles CPU), from the render request to completed (the job validated just before), serve --workers 1 on SQLite and local files, with warm Blender sessions (the default) and with a Blender process per chunk (--blender-keep-alive 0), against `blender -b --factory-startup --disable-autoexec FILE -a` with the same settings; every part is the sum over the job's chunks, and the ratio is the median of each run's farm time over the same run's time by hand:\n\n",
		overheadFrames, filepath.Base(b.scene), overheadRender.width, overheadRender.height, overheadRender.samples)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\ttotal\tratio\tqueue\tBlender start\trendering\tBlender exit\tbetween chunks\tfinalizing\tstore a frame\trecord a frame")
	fmt.Fprintf(tw, "blender -a by hand\t%s\t1.000\t-\t%s\t%s\t%s\t-\t-\t-\t-\n", secs(direct),
		secs(benchkit.Median(hand, func(h byHand) time.Duration { return h.start })),
		secs(benchkit.Median(hand, func(h byHand) time.Duration { return h.rendering })),
		secs(benchkit.Median(hand, func(h byHand) time.Duration { return h.exit })))
	for mode := range overheadModes {
		for _, chunk := range overheadChunks {
			c := overheadCase{mode, chunk}
			n := farmRuns[c][0].chunks
			fmt.Fprintf(tw, "%s, chunkSize %d (%s)\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", overheadModes[mode].name, chunk, chunksOf(n),
				secs(med(c, total)), ratio(c, total),
				millis(med(c, func(r farmRun) time.Duration { return r.queue })),
				secs(med(c, func(r farmRun) time.Duration { return r.start })),
				secs(med(c, func(r farmRun) time.Duration { return r.rendering })),
				secs(med(c, func(r farmRun) time.Duration { return r.exit })),
				secs(med(c, func(r farmRun) time.Duration { return r.between })),
				millis(med(c, func(r farmRun) time.Duration { return r.finalize })),
				millis(med(c, func(r farmRun) time.Duration { return r.store / overheadFrames })),
				millis(med(c, func(r farmRun) time.Duration { return r.record / overheadFrames })))
		}
	}
	tw.Flush()

	startMed, sandboxMed, unconfinedMed := benchkit.MedianOf(startOnly), benchkit.MedianOf(sandboxed), benchkit.MedianOf(unconfined)
	fmt.Fprintf(&out, "\nBlender starting, loading %s, applying the settings and quitting, without rendering: %s by hand. Starting a program in the farm's sandbox (bubblewrap) takes %s, against %s unconfined.\n",
		filepath.Base(b.scene), secs(startMed), millis(sandboxMed), millis(unconfinedMed))
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	b.detail(out.String())

	for mode := range overheadModes {
		for _, chunk := range overheadChunks {
			c := overheadCase{mode, chunk}
			r := ratio(c, total)
			what := fmt.Sprintf("%d frames 320x180, request → completed, chunkSize %d, %s", overheadFrames, chunk, overheadModes[mode].name)
			target, ok := "-", ""
			if mode == 0 && chunk == overheadChunks[0] {
				what += " (the farm's choice)"
				target, ok = "≤ 1.05", met(r <= 1.05)
			}
			b.result(result{"1", what, secs(med(c, total)), "blender -a " + secs(direct), fmt.Sprintf("%.3f", r), target, ok})
		}
	}
	cold := overheadCase{1, 1}
	perChunk := med(cold, func(r farmRun) time.Duration { return (r.start + r.exit) / time.Duration(r.chunks) })
	b.result(result{"1", "Blender start + file load + exit, per chunk without warm sessions", secs(perChunk), "", "", "", ""})
}

// byHand renders the frames with Blender alone, as an artist would, and
// reads where the time went from its output: to the first "Fra:" line,
// from there to the last "Saved:", and from there to its exit.
func (b *bench) byHand(r renderSettings) byHand {
	out := b.TempDir("by-hand")
	defer os.RemoveAll(out)
	var first, last int
	if _, err := fmt.Sscanf(r.frames, "%d-%d", &first, &last); err != nil {
		benchkit.Fatalf("frames %q: %v", r.frames, err)
	}
	cmd := exec.CommandContext(b.Ctx, "blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", b.scene,
		"--python-expr", settingsExpr(filepath.Join(out, "frame_####"), first, last, r), "-a")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		benchkit.Fatalf("blender: %v", err)
	}
	var firstFrame, lastSaved time.Time
	var tailLines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case firstFrame.IsZero() && strings.HasPrefix(line, "Fra:"):
			firstFrame = time.Now()
		case strings.HasPrefix(line, "Saved:"):
			lastSaved = time.Now()
		}
		tailLines = append(tailLines[max(0, len(tailLines)-20):], line)
	}
	err = cmd.Wait()
	exited := time.Now()
	got, _ := filepath.Glob(filepath.Join(out, "frame_*.png"))
	if err != nil || len(got) != last-first+1 || firstFrame.IsZero() {
		benchkit.Fatalf("blender by hand wrote %d frames, want %d (%v):\n%s", len(got), last-first+1, err, strings.Join(tailLines, "\n"))
	}
	return byHand{total: exited.Sub(start), start: firstFrame.Sub(start), rendering: lastSaved.Sub(firstFrame), exit: exited.Sub(lastSaved)}
}

// settingsExpr applies what the farm's settings script applies for this
// request: frames, resolution, samples, no denoiser (Debian's Blender has
// none), PNG.
func settingsExpr(out string, first, last int, r renderSettings) string {
	return fmt.Sprintf(`import bpy
s = bpy.context.scene
s.frame_start, s.frame_end = %d, %d
s.render.resolution_x, s.render.resolution_y, s.render.resolution_percentage = %d, %d, 100
s.cycles.samples = %d
s.cycles.use_denoising = False
for vl in s.view_layers: vl.cycles.use_denoising = False
s.render.image_settings.file_format = 'PNG'
s.render.filepath = %q
`, first, last, r.width, r.height, r.samples, out)
}

// blenderStartOnly is what every chunk pays before its first frame and
// after its last: Blender starting, loading the file, applying settings,
// and quitting, with no frame rendered.
func (b *bench) blenderStartOnly(r renderSettings) time.Duration {
	out := b.TempDir("start-only")
	defer os.RemoveAll(out)
	start := time.Now()
	cmd := exec.CommandContext(b.Ctx, "blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", b.scene,
		"--python-expr", settingsExpr(filepath.Join(out, "frame_####"), 1, 1, r))
	if out, err := cmd.CombinedOutput(); err != nil {
		benchkit.Fatalf("blender: %v\n%s", err, out)
	}
	return time.Since(start)
}

// sandboxStart is the time to run `true` in the farm's sandbox, as the
// render workers start Blender, and unconfined: the median of 10 each.
func (b *bench) sandboxStart() (confined, unconfined time.Duration) {
	sb, err := sandbox.New(b.Ctx, sandbox.Config{Mode: sandbox.Auto, OpenFiles: 4096})
	if err != nil {
		benchkit.Fatalf("sandbox: %v", err)
	}
	dir := b.TempDir("sandbox")
	defer os.RemoveAll(dir)
	run := func(argv []string) time.Duration {
		ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			benchkit.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return time.Since(start)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	var c, u []time.Duration
	for range 10 {
		c = append(c, run(sb.Command([]string{truePath}, sandbox.Paths{ReadOnly: []string{filepath.Dir(b.scene)}, Writable: []string{dir}})))
		u = append(u, run([]string{truePath}))
	}
	return benchkit.MedianOf(c), benchkit.MedianOf(u)
}

func chunksOf(n int) string {
	if n == 1 {
		return "1 chunk"
	}
	return fmt.Sprintf("%d chunks", n)
}
