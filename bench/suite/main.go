// Command suite measures, side by side in one run, what the farm adds to
// the work it carries out, and prints one table of results with ratios:
//
//  1. overhead: 24 frames at 320x180, 32 samples, Cycles CPU, from the
//     render request to `completed`, against Blender rendering the same
//     frames by hand (`blender -b … -a`), at chunkSize 24, 4 and 1, with
//     and without warm Blender sessions, and where the difference goes
//     (queue, Blender starting per chunk, storing frames, finalizing);
//  2. queue: from the render request to the chunk handed to Blender, and
//     from the last frame stored to `completed`, on SQLite and PostgreSQL;
//  3. upload: a 1 GiB file through a presigned URL of `serve` against `cp`
//     on the same disk, and serve's memory growth meanwhile;
//  4. api: `GET /jobs/{id}/progress` at 64 connections against `/healthz`
//     of the same server (wrk), and `GET /jobs` with 100,000 jobs;
//  5. scale: what scheduling a 10,000-frame job costs, per frame and per
//     chunk, and the render time with 1, 2 and 4 workers.
//
// Where the farm's time goes comes from the line every render worker logs
// when a chunk ends ("chunk rendered", with the time Blender took to start,
// to render, to exit, and the time spent storing and recording frames).
//
// Every measurement runs -runs times, the cases of a run interleaved; the
// tables show medians. It needs Blender, ffmpeg, curl and wrk, and for the
// PostgreSQL cases RENDERFARM_TEST_POSTGRES, RENDERFARM_TEST_S3_ENDPOINT
// and the AWS_* variables, as scripts/services.sh sets them:
// scripts/bench.sh installs and starts all of it and runs
//
//	go run ./bench/suite [-runs 3] [-only overhead,queue,upload,api,scale]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
)

func main() {
	runs := flag.Int("runs", 3, "how many times to measure each case (the median is reported)")
	only := flag.String("only", "overhead,queue,upload,api,scale", "which measurements to run, comma-separated")
	scene := flag.String("scene", "testdata/scenes/cube.blend", "the .blend to render (its frames 1-24)")
	flag.Parse()
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := setUp(ctx, *scene, *runs)
	defer b.tearDown()

	began := time.Now()
	fmt.Printf("machine: %d cores, %s, %s memory; load average at start: %s\n\n", runtime.NumCPU(), benchkit.CPUModel(), benchkit.MemTotal(), benchkit.LoadAverage())
	sections := []struct {
		name string
		run  func()
	}{
		{"overhead", b.measureOverhead},
		{"queue", b.measureQueue},
		{"upload", b.measureUpload},
		{"api", b.measureAPI},
		{"scale", b.measureScale},
	}
	for _, s := range sections {
		if want[s.name] {
			s.run()
		}
	}

	fmt.Printf("\n%s\n", strings.Repeat("=", 100))
	for _, d := range b.details {
		fmt.Printf("\n%s", d)
	}
	fmt.Printf("\nResults: %d cores (%s), %s memory, %d runs of each case, medians; took %s; load average at the end: %s\n\n",
		runtime.NumCPU(), benchkit.CPUModel(), benchkit.MemTotal(), b.runs, time.Since(began).Round(time.Second), benchkit.LoadAverage())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tmeasurement\tfarm\treference\tratio\ttarget\tmet")
	for _, r := range b.results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.section, r.what, r.farm, r.reference, r.ratio, r.target, r.met)
	}
	tw.Flush()
}

// result is one line of the final table.
type result struct {
	section, what, farm, reference, ratio, target, met string
}

func (b *bench) result(r result) { b.results = append(b.results, r) }

// detail keeps a section's own table for the end of the report.
func (b *bench) detail(s string) { b.details = append(b.details, s) }

// met says whether a target was reached, for the final table.
func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// bench holds what every measurement shares: the lab (the binary, the
// work directory, the services), the scene, and the results.
type bench struct {
	*benchkit.Lab
	runs    int
	scene   string // absolute
	results []result
	details []string
}

func setUp(ctx context.Context, scene string, runs int) *bench {
	if runs < 1 {
		benchkit.Fatalf("-runs must be 1 or more")
	}
	abs, err := filepath.Abs(scene)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	if _, err := os.Stat(abs); err != nil {
		benchkit.Fatalf("scene: %v (run from the repository's root)", err)
	}
	for _, tool := range []string{"blender", "ffmpeg", "curl", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			benchkit.Fatalf("%s is needed: %v (scripts/bench.sh installs it)", tool, err)
		}
	}
	return &bench{Lab: benchkit.NewLab(ctx), runs: runs, scene: abs}
}

func (b *bench) tearDown() { benchkit.RunExits() }
