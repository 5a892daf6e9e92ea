package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
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
			db := b.postgres().database()
			f := b.newFarm(b.tempDir("queue"), []string{"--database", db}, []string{"--database", db})
			f.serve("--workers", "1")
			return f
		}},
		{"PostgreSQL, bucket: serve --workers 0 + worker", func(b *bench) *farm {
			pg := b.postgres()
			db := pg.database()
			f := b.newFarm("", []string{"--database", db, "--storage", pg.storage(fmt.Sprintf("queue-%d", pg.seq))}, []string{"--database", db})
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
			f.stop()
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

// postgres is the PostgreSQL server and the S3-compatible server that
// scripts/services.sh starts; each farm gets a database of its own and a
// prefix of one bucket, all removed at the end.
type postgres struct {
	ctx      context.Context
	admin    *sql.DB
	adminURL *url.URL
	endpoint string
	region   string
	s3       *minio.Client
	bucket   string
	seq      int // databases made
}

func (b *bench) postgres() *postgres {
	if b.pg != nil {
		return b.pg
	}
	admin, endpoint := os.Getenv("RENDERFARM_TEST_POSTGRES"), os.Getenv("RENDERFARM_TEST_S3_ENDPOINT")
	if admin == "" || endpoint == "" {
		benchkit.Fatalf("RENDERFARM_TEST_POSTGRES and RENDERFARM_TEST_S3_ENDPOINT are not set; start the services with scripts/services.sh (start_postgres, start_s3), or run scripts/bench.sh")
	}
	p := &postgres{ctx: b.ctx, endpoint: endpoint, region: cmp.Or(os.Getenv("AWS_REGION"), "us-east-1")}
	var err error
	if p.adminURL, err = url.Parse(admin); err != nil {
		benchkit.Fatalf("RENDERFARM_TEST_POSTGRES: %v", err)
	}
	if p.admin, err = sql.Open("pgx", admin); err != nil {
		benchkit.Fatalf("%v", err)
	}
	benchkit.AtExit(func() { p.admin.Close() })
	eu, err := url.Parse(endpoint)
	if err != nil {
		benchkit.Fatalf("RENDERFARM_TEST_S3_ENDPOINT: %v", err)
	}
	p.s3, err = minio.New(eu.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: eu.Scheme == "https", Region: p.region})
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	p.bucket = "renderfarm-bench-" + hex.EncodeToString(suffix)
	if err := p.s3.MakeBucket(b.ctx, p.bucket, minio.MakeBucketOptions{Region: p.region}); err != nil {
		benchkit.Fatalf("make bucket: %v", err)
	}
	benchkit.AtExit(func() {
		ctx := context.Background()
		for obj := range p.s3.ListObjects(ctx, p.bucket, minio.ListObjectsOptions{Recursive: true}) {
			_ = p.s3.RemoveObject(ctx, p.bucket, obj.Key, minio.RemoveObjectOptions{})
		}
		if err := p.s3.RemoveBucket(ctx, p.bucket); err != nil {
			fmt.Fprintf(os.Stderr, "remove bucket %s: %v\n", p.bucket, err)
		}
	})
	b.pg = p
	return p
}

// database creates a database of its own for one farm and returns its
// URL; it is dropped at the end.
func (p *postgres) database() string {
	p.seq++
	name := fmt.Sprintf("%s_%d", strings.ReplaceAll(p.bucket, "-", "_"), p.seq)
	if _, err := p.admin.ExecContext(p.ctx, `CREATE DATABASE `+name); err != nil {
		benchkit.Fatalf("create database: %v", err)
	}
	benchkit.AtExit(func() {
		if _, err := p.admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", name, err)
		}
	})
	u := *p.adminURL
	u.Path = "/" + name
	return u.String()
}

// storage is the bucket, under a prefix of its own for one farm.
func (p *postgres) storage(prefix string) string {
	return "s3://" + p.bucket + "?endpoint=" + url.QueryEscape(p.endpoint) + "&region=" + p.region + "&prefix=" + prefix + "/"
}
