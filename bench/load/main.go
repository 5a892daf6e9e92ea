// Command load measures the API under polling load while a job renders:
// it renders the same frames of a scene through `renderfarm serve` once
// alone and once while clients (64 by default, one connection each) ask
// GET /jobs/{id}/progress one request after the other, as fast as they are
// answered, from the render request until the job completes. It prints the
// progress endpoint's requests per second and its p50/p99 latency under
// that load, any request that failed or was not a 2xx, and the render time
// with and without the load. With -interval, each client waits that long
// after each answer instead, as a dashboard or a pipeline polling does.
//
//	go run ./bench/load [-clients 64] [-interval 0] [-frames 24] [-size 320x180] [-samples 32] [-runs 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	"github.com/renderfarm/renderfarm/client"
)

func main() {
	clients := flag.Int("clients", 64, "clients polling progress at once, one connection each")
	interval := flag.Duration("interval", 0, "how long each client waits after an answer before its next request (0: none)")
	frames := flag.Int("frames", 24, "frames to render (1..N of the scene)")
	size := flag.String("size", "320x180", "resolution WxH")
	samples := flag.Int("samples", 32, "Cycles samples")
	runs := flag.Int("runs", 3, "how many times to render alone and under load (medians are reported)")
	scene := flag.String("scene", "testdata/scenes/cube.blend", "the .blend to render")
	flag.Parse()
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
		benchkit.Fatalf("-size %q: want WxH", *size)
	}
	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{fmt.Sprintf("1-%d", *frames)},
		Resolution:            []int{w, h},
		SampleCount:           client.Int(*samples),
	}

	defer benchkit.RunExits()
	lab := benchkit.NewLab(context.Background())
	f := lab.LocalFarm("load")
	p := f.Serve("serve")
	benchkit.AtExit(f.Stop)
	s := &serve{cmd: p.Cmd, url: f.URL, key: f.Key, c: f.Client(20 * time.Millisecond)}

	fmt.Printf("machine: %d cores, %s; load average at start: %s\n", runtime.NumCPU(), benchkit.CPUModel(), benchkit.LoadAverage())
	pace := "as fast as they are answered"
	if *interval > 0 {
		pace = "each waiting " + interval.String() + " after each answer"
	}
	fmt.Printf("%d frames of %s at %dx%d, %d samples; %d clients polling progress during the loaded renders, %s\n\n",
		*frames, filepath.Base(*scene), w, h, *samples, *clients, pace)

	meter := startCPUMeter(s.cmd.Process.Pid)
	var alone, loaded []render
	var polls []pollResult
	for i := range *runs {
		a := s.render(*scene, cfg, 0, 0)
		l := s.render(*scene, cfg, *clients, *interval)
		fmt.Printf("run %d: alone %.2f s (Blender %.2f s; %s)\n", i+1, a.took.Seconds(), a.blenderSeconds, a.cpu())
		fmt.Printf("       under load %.2f s (Blender %.2f s; %s)\n", l.took.Seconds(), l.blenderSeconds, l.cpu())
		fmt.Printf("       %s\n", l.poll)
		alone, loaded, polls = append(alone, a), append(loaded, l), append(polls, l.poll)
	}
	fmt.Printf("\n%s\n\n", meter.report())

	var all pollResult
	for _, p := range polls {
		all.add(p)
	}
	fmt.Printf("medians of %d runs:\n", *runs)
	fmt.Printf("render alone:        %.2f s (Blender's own render seconds %.2f)\n",
		median(alone, func(r render) float64 { return r.took.Seconds() }), median(alone, func(r render) float64 { return r.blenderSeconds }))
	fmt.Printf("render under load:   %.2f s (Blender's own render seconds %.2f)\n",
		median(loaded, func(r render) float64 { return r.took.Seconds() }), median(loaded, func(r render) float64 { return r.blenderSeconds }))
	fmt.Printf("progress under load: %.0f requests/s, p50 %.1f ms, p99 %.1f ms\n",
		median(polls, func(p pollResult) float64 { return p.rate() }),
		median(polls, func(p pollResult) float64 { return benchkit.Ms(p.percentile(0.50)) }),
		median(polls, func(p pollResult) float64 { return benchkit.Ms(p.percentile(0.99)) }))
	fmt.Printf("all runs: %d requests, %d failed, %d answered other than 2xx\n", len(all.latencies)+all.failed, all.failed, all.refused)
	if all.failed+all.refused > 0 {
		benchkit.Fatalf("for example: %q", all.examples)
	}
}

// serve is one `renderfarm serve` and a client of it.
type serve struct {
	cmd *exec.Cmd
	url string
	key string
	c   *client.Client
}

// render is one render's measurements.
type render struct {
	took           time.Duration // from the render request to completed
	blenderSeconds float64       // the job's normalizedSeconds: Blender's own render time
	poll           pollResult
	// CPU seconds from the render request to completed: serve's own (the
	// API and the engine), Blender's and ffmpeg's, and the pollers'.
	serveCPU, toolsCPU, pollersCPU float64
}

func (r render) cpu() string {
	return fmt.Sprintf("CPU: serve %.1f s, Blender and ffmpeg %.1f s, pollers %.1f s", r.serveCPU, r.toolsCPU, r.pollersCPU)
}

// render validates a new job of scene and renders it with clients polling
// its progress (none for 0), pausing interval after each answer, from just
// before the render request until the job completes.
func (s *serve) render(scene string, cfg client.RenderConfig, clients int, interval time.Duration) render {
	ctx := context.Background()
	slug, err := s.c.UploadFile(ctx, scene, nil)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	job, err := s.c.CreateJob(ctx, slug)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	if _, err := s.c.Validate(ctx, job.ID); err != nil {
		benchkit.Fatalf("%v", err)
	}
	if v, err := s.c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated, client.StatusFailed), nil); err != nil || v.Status != client.StatusValidated {
		benchkit.Fatalf("validation: %v %v", v, err)
	}

	stop := make(chan struct{})
	results := make(chan pollResult, 1)
	if clients > 0 {
		go func() { results <- s.poll(job.ID, clients, interval, stop) }()
	}
	serve0, tools0 := serveCPU(s.cmd.Process.Pid)
	self0 := selfCPU()
	start := time.Now()
	if _, _, err := s.c.Render(ctx, job.ID, cfg); err != nil {
		benchkit.Fatalf("%v", err)
	}
	done, err := s.c.Wait(ctx, job.ID, client.UntilFinal, nil)
	took := time.Since(start)
	close(stop)
	if err != nil || done.Status != client.StatusCompleted {
		benchkit.Fatalf("job ended %v: %v", done, err)
	}
	r := render{took: took, blenderSeconds: done.NormalizedSeconds}
	if clients > 0 {
		r.poll = <-results
	}
	serve1, tools1 := serveCPU(s.cmd.Process.Pid)
	r.serveCPU, r.toolsCPU, r.pollersCPU = serve1-serve0, tools1-tools0, selfCPU()-self0
	return r
}

// pollResult is what the pollers of one render saw.
type pollResult struct {
	elapsed         time.Duration
	latencies       []time.Duration // of the 2xx answers
	failed, refused int
	examples        []string
}

func (p *pollResult) add(o pollResult) {
	p.elapsed += o.elapsed
	p.latencies = append(p.latencies, o.latencies...)
	p.failed += o.failed
	p.refused += o.refused
	if len(p.examples) < 5 {
		p.examples = append(p.examples, o.examples...)
	}
}

func (p pollResult) rate() float64 {
	return float64(len(p.latencies)+p.failed+p.refused) / p.elapsed.Seconds()
}

// percentile of the latencies, which must be sorted.
func (p pollResult) percentile(q float64) time.Duration {
	if len(p.latencies) == 0 {
		return 0
	}
	return p.latencies[min(len(p.latencies)-1, int(q*float64(len(p.latencies))))]
}

func (p pollResult) String() string {
	return fmt.Sprintf("%d progress requests, %.0f/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d failed, %d not 2xx",
		len(p.latencies)+p.failed+p.refused, p.rate(), benchkit.Ms(p.percentile(0.50)), benchkit.Ms(p.percentile(0.99)),
		benchkit.Ms(p.percentile(1)), p.failed, p.refused)
}

// poll runs clients pollers of the job's progress, each pausing interval
// after each answer, until stop is closed.
func (s *serve) poll(jobID string, clients int, interval time.Duration, stop <-chan struct{}) pollResult {
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: time.Minute}
	url := s.url + "/api/external/v1/jobs/" + jobID + "/progress"
	results := make([]pollResult, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			r := &results[i]
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+s.key)
				sent := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					r.failed++
					r.example(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(sent)
				switch {
				case err != nil || !json.Valid(body):
					r.failed++
					r.example(fmt.Sprintf("%v: %.200s", err, body))
				case resp.StatusCode/100 != 2:
					r.refused++
					r.example(strconv.Itoa(resp.StatusCode) + " " + string(body))
				default:
					r.latencies = append(r.latencies, took)
				}
				if interval > 0 {
					select {
					case <-stop:
						return
					case <-time.After(interval):
					}
				}
			}
		})
	}
	wg.Wait()
	var all pollResult
	for _, r := range results {
		all.add(r)
	}
	all.elapsed = time.Since(start)
	slices.Sort(all.latencies)
	return all
}

func (p *pollResult) example(s string) {
	if len(p.examples) < 5 {
		p.examples = append(p.examples, s)
	}
}

func median[T any](xs []T, of func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = of(x)
	}
	return benchkit.MedianFloat(v)
}

// cpuMeter tells how busy the machine was during the measurements, and how
// much of that was not this benchmark's (this process and serve, with the
// Blender and ffmpeg processes serve waited for), so that a shared machine
// shows in the results.
type cpuMeter struct {
	start      time.Time
	servePid   int
	busy, ours float64
}

func startCPUMeter(servePid int) cpuMeter {
	return cpuMeter{start: time.Now(), servePid: servePid, busy: benchkit.MachineCPU(), ours: ourCPU(servePid)}
}

func (m cpuMeter) report() string {
	wall := time.Since(m.start).Seconds()
	ours := ourCPU(m.servePid) - m.ours
	others := max(0, benchkit.MachineCPU()-m.busy-ours)
	return fmt.Sprintf("over these %.0f s: this benchmark (serve, Blender, ffmpeg and the pollers) used %.2f cores on average, everything else on the machine %.2f cores; load average now %s",
		wall, ours/wall, others/wall, benchkit.LoadAverage())
}

// clockTicks is USER_HZ on Linux, the unit of /proc's CPU times.
const clockTicks = 100

// ourCPU is the CPU seconds this process and serve (with the children it
// waited for) used.
func ourCPU(servePid int) float64 {
	serve, children := serveCPU(servePid)
	return selfCPU() + serve + children
}

// selfCPU is the CPU seconds this process (the pollers) used.
func selfCPU() float64 {
	var self syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	return benchkit.Seconds(self.Utime) + benchkit.Seconds(self.Stime)
}

// serveCPU is the CPU seconds serve used itself, and those its children it
// waited for (Blender, ffmpeg) used.
func serveCPU(pid int) (own, children float64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	// After the command name: state is field 3; utime, stime, cutime and
	// cstime are fields 14 to 17.
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 15 {
		return 0, 0
	}
	var t [4]float64
	for i, f := range fields[11:15] {
		n, _ := strconv.ParseFloat(f, 64)
		t[i] = n / clockTicks
	}
	return t[0] + t[1], t[2] + t[3]
}
