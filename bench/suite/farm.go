package main

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	"github.com/renderfarm/renderfarm/client"
)

// farm is one of the suite's farms: its processes log JSON, for the
// chunk lines, and their POST requests are not rate limited, so that no
// measurement waits for a 429.
type farm struct {
	*benchkit.Farm
	b *bench
}

// localFarm is the one-machine shape: SQLite and files under --data-dir.
func (b *bench) localFarm(name string) *farm { return &farm{Farm: b.LocalFarm(name), b: b} }

// postgresFarm is a farm on PostgreSQL, its objects in the bucket or on
// this machine's disk.
func (b *bench) postgresFarm(name string, bucket bool) *farm {
	return &farm{Farm: b.PostgresFarm(name, bucket), b: b}
}

// serve starts `renderfarm serve`; the first one is the farm's address.
func (f *farm) serve(args ...string) *benchkit.Proc {
	return f.Serve("serve", append([]string{"--log-format", "json", "--rate-limit", "0"}, args...)...)
}

// worker starts a render node.
func (f *farm) worker(name string, args ...string) *benchkit.Proc {
	return f.Worker(name, append([]string{"--log-format", "json"}, args...)...)
}

func (f *farm) client() *client.Client { return f.Client(20 * time.Millisecond) }

// validatedJob is a validated job of the file at path.
func (f *farm) validatedJob(path string) string { return f.ValidatedJob(f.client(), path) }

// renderSettings are the frames and settings of a render request.
type renderSettings struct {
	frames         string // a frame range, "1-24"
	width, height  int
	samples, chunk int // chunk 0 leaves chunkSize to the farm
}

func (r renderSettings) config() client.RenderConfig {
	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{r.frames},
		Resolution:            []int{r.width, r.height},
		SampleCount:           client.Int(r.samples),
	}
	if r.chunk > 0 {
		cfg.ChunkSize = client.Int(r.chunk)
	}
	return cfg
}

// rendered is what one render through the farm took, from the bench's
// side (request and completion) and the workers' (their chunk lines).
type rendered struct {
	requested, completed time.Time
	chunks               []chunkLog
	job                  *client.Job
}

// render asks for the job's frames and waits for the job to complete;
// then it reads the chunk lines of the job, of which it expects chunks.
//
// The moment the job completed is its updatedAt, which the farm stamps in
// the transaction that completes it, so the job's status is asked for only
// every 200 ms, as a client would: asking every few milliseconds would take
// CPU from Blender on a small machine and make the farm look slower.
func (f *farm) render(job string, r renderSettings, chunks int) rendered {
	ctx, c := f.b.Ctx, f.client()
	res := rendered{requested: time.Now()}
	if _, _, err := c.Render(ctx, job, r.config()); err != nil {
		benchkit.Fatalf("render: %v", err)
	}
	for {
		f.b.Sleep(200 * time.Millisecond)
		j, err := c.GetJob(ctx, job)
		if err != nil {
			benchkit.Fatalf("get job: %v", err)
		}
		if j.Status.IsFinal() {
			if j.Status != client.StatusCompleted {
				benchkit.Fatalf("job %s ended %s: %+v\n%s", job, j.Status, j.FailedReason, f.Logs())
			}
			res.completed, res.job = j.UpdatedAt, j
			break
		}
	}
	res.chunks = f.chunks(job, chunks)
	return res
}

// chunks reads the chunk lines of a job from the farm's logs, waiting a
// little for the last ones when fewer than want are there yet.
func (f *farm) chunks(job string, want int) []chunkLog {
	var got []chunkLog
	for deadline := time.Now().Add(2 * time.Second); ; f.b.Sleep(20 * time.Millisecond) {
		got = got[:0]
		for _, p := range f.Procs() {
			got = append(got, readChunks(p.LogPath, job)...)
		}
		if len(got) >= want || time.Now().After(deadline) {
			break
		}
	}
	slices.SortFunc(got, func(a, b chunkLog) int { return a.start().Compare(b.start()) })
	return got
}

// chunkLog is one "chunk rendered" line of a worker's log: where the time
// of one chunk went (see chunkTimes in internal/node).
type chunkLog struct {
	At           time.Time     `json:"time"` // when the chunk ended
	Msg          string        `json:"msg"`
	Job          string        `json:"job"`
	Frames       int           `json:"frames"`
	Prepare      time.Duration `json:"prepare"`
	BlenderStart time.Duration `json:"blenderStart"`
	Rendering    time.Duration `json:"rendering"`
	BlenderExit  time.Duration `json:"blenderExit"`
	Store        time.Duration `json:"store"`
	Record       time.Duration `json:"record"`
	Took         time.Duration `json:"took"`
}

// start is when the worker took the chunk; spawn when it started Blender;
// lastStored when the chunk's last frame was stored and recorded.
func (c chunkLog) start() time.Time      { return c.At.Add(-c.Took) }
func (c chunkLog) spawn() time.Time      { return c.start().Add(c.Prepare) }
func (c chunkLog) lastStored() time.Time { return c.spawn().Add(c.BlenderStart + c.Rendering) }

// bookkeeping is the worker's own time around Blender: claiming the chunk
// and preparing its input, and closing the chunk afterwards.
func (c chunkLog) bookkeeping() time.Duration {
	return c.Took - c.BlenderStart - c.Rendering - c.BlenderExit
}

func readChunks(logPath, job string) []chunkLog {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []chunkLog
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"msg":"chunk rendered"`) {
			continue
		}
		var c chunkLog
		if err := json.Unmarshal(line, &c); err != nil {
			benchkit.Fatalf("%s: %v: %s", logPath, err, line)
		}
		if c.Job == job {
			out = append(out, c)
		}
	}
	return out
}
