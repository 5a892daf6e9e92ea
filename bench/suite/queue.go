package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// ---- 2. queue: from the request to Blender, from the last frame to completed ----

type queueCase struct {
	name  string
	start func(b *bench) *farm
}

type queueRun struct {
	pickedUp, blenderStarted, finalized time.Duration
}

// queueRender is one chunk of 4 frames, so that the job's first Blender
// start and its finalizing are what is measured.
var queueRender = renderSettings{frames: "1-4", width: 320, height: 180, samples: 32, chunk: 4}

func (b *bench) measureQueue() {
	cases := []queueCase{
		{"SQLite, local files: serve --workers 1", func(b *bench) *farm {
			f := b.localFarm("queue")
			f.serve("--workers", "1")
			return f
		}},
		{"PostgreSQL, local files: serve --workers 1", func(b *bench) *farm {
			f := b.postgresFarm("queue", false)
			f.serve("--workers", "1")
			return f
		}},
		{"PostgreSQL, bucket: serve --workers 0 + worker", func(b *bench) *farm {
			f := b.postgresFarm("queue", true)
			f.serve("--workers", "0")
			f.worker("node-a")
			return f
		}},
	}
	fmt.Printf("\n== 2. queue latency: 4 frames in one chunk, on SQLite and on PostgreSQL\n")
	meter := benchkit.StartCPUMeter()
	results := map[string][]queueRun{}
	for run := 1; run <= b.runs; run++ {
		for i := range cases {
			c := cases[(i+run-1)%len(cases)]
			f := c.start(b)
			job := f.validatedJob(b.scene)
			r := f.render(job, queueRender, 1)
			f.Stop()
			first, last := r.chunks[0], r.chunks[len(r.chunks)-1]
			q := queueRun{
				pickedUp:       first.start().Sub(r.requested),
				blenderStarted: first.spawn().Sub(r.requested),
				finalized:      r.completed.Sub(last.lastStored()),
			}
			results[c.name] = append(results[c.name], q)
			fmt.Printf("queue run %d, %s: picked up after %s, handed to Blender after %s, last frame stored to completed %s\n",
				run, c.name, millis(q.pickedUp), millis(q.blenderStarted), millis(q.finalized))
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "2. Queue latency, one worker, frames %s of the scene in one chunk (%dx%d, %d samples): from the render request to a worker taking the chunk and to the chunk handed to Blender (the warm session that validated the file, or a Blender started for it); from the last frame stored to completed (the chunk closed, the finalize work queued and taken, the zip and the preview made, to the job's updatedAt):\n\n",
		queueRender.frames, queueRender.width, queueRender.height, queueRender.samples)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "farm\trequest to picked up\trequest to Blender rendering\tlast frame stored to completed")
	for _, c := range cases {
		rs := results[c.name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.name,
			millis(benchkit.Median(rs, func(r queueRun) time.Duration { return r.pickedUp })),
			millis(benchkit.Median(rs, func(r queueRun) time.Duration { return r.blenderStarted })),
			millis(benchkit.Median(rs, func(r queueRun) time.Duration { return r.finalized })))
	}
	tw.Flush()
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	b.detail(out.String())

	for _, c := range cases {
		rs := results[c.name]
		db, _, _ := strings.Cut(c.name, ":")
		b.result(result{"2", "request → chunk handed to Blender, " + strings.TrimPrefix(c.name, db+": ") + ", " + db,
			millis(benchkit.Median(rs, func(r queueRun) time.Duration { return r.blenderStarted })), "", "", "", ""})
	}
	for _, c := range cases {
		rs := results[c.name]
		db, _, _ := strings.Cut(c.name, ":")
		b.result(result{"2", "last frame stored → completed, " + strings.TrimPrefix(c.name, db+": ") + ", " + db,
			millis(benchkit.Median(rs, func(r queueRun) time.Duration { return r.finalized })), "", "", "", ""})
	}
}
