package service

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// The costs docs/performance.md reports of the reads that grow with a
// workspace (section 8):
//
//	go test ./internal/service/ -run '^$' -bench 'RunningProgress|Downloads' -benchtime 20x
//	go test ./internal/service/ -run '^$' -bench 'ProgressOfALargeJob' -benchtime 5x

// BenchmarkRunningProgress is GET /jobs/progress of a workspace with 1,
// 10 and 50 jobs of 24 frames rendering, on each database.
func BenchmarkRunningProgress(b *testing.B) {
	for _, d := range []store.Dialect{store.DialectSQLite, store.DialectPostgres} {
		for _, jobs := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("%s/jobs=%d", d, jobs), func(b *testing.B) {
				f := newFixture(b, enginetest.Database{Dialect: d})
				for range jobs {
					f.RenderingJob(f.api, 24, 4)
				}
				for b.Loop() {
					if list, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{}); err != nil || len(list) != jobs {
						b.Fatalf("%d jobs, %v", len(list), err)
					}
				}
			})
		}
	}
}

// BenchmarkProgressOfALargeJob is GET /jobs/progress and GET
// /jobs/{id}/progress of one job of 100,000 frames (farm.MaxFramesPerJob)
// rendering, with its frames, without (frames=none), and with a page of a
// thousand of them (frames=A-B, one job's): the service's answer and its
// JSON (body-bytes: its size).
func BenchmarkProgressOfALargeJob(b *testing.B) {
	for _, d := range []store.Dialect{store.DialectSQLite, store.DialectPostgres} {
		b.Run(string(d), func(b *testing.B) {
			f := newFixture(b, enginetest.Database{Dialect: d})
			job := f.RenderingJob(f.api, farm.MaxFramesPerJob, 100)
			for _, c := range []struct {
				name string
				q    farm.ProgressQuery
			}{{"frames=all", farm.ProgressQuery{}}, {"frames=none", farm.ProgressQuery{WithoutFrames: true}},
				{"frames=50001-51000", farm.ProgressQuery{Frames: &farm.FrameRange{Start: 50_001, End: 51_000, Step: 1}}}} {
				for _, route := range []string{"running", "one"} {
					if route == "running" && c.q.Frames != nil {
						continue // a span is one job's
					}
					b.Run(route+"/"+c.name, func(b *testing.B) {
						var size int
						for b.Loop() {
							var answer any
							var err error
							if route == "running" {
								answer, err = f.api.RunningProgress(f.Ctx, f.P, c.q)
							} else {
								answer, err = f.api.Progress(f.Ctx, f.P, job.ID, c.q)
							}
							if err != nil {
								b.Fatal(err)
							}
							body, err := json.Marshal(answer)
							if err != nil {
								b.Fatal(err)
							}
							size = len(body)
						}
						b.ReportMetric(float64(size), "body-bytes")
					})
				}
			}
		})
	}
}

// BenchmarkDownloads is GET /jobs/{id}/downloads of a job of 100,000
// frames (farm.MaxFramesPerJob), each one file: the service's answer,
// its URLs presigned by the farm's own store or by the S3 client, and
// its JSON (body-bytes: its size).
func BenchmarkDownloads(b *testing.B) {
	for _, c := range []struct {
		name string
		d    store.Dialect
		s3   bool
	}{{"sqlite,local", store.DialectSQLite, false}, {"postgres,local", store.DialectPostgres, false}, {"postgres,s3", store.DialectPostgres, true}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, enginetest.Database{Dialect: c.d})
			job := f.InsertJob(f.api, farm.StatusCompleted)
			key := `'jobs/' || ? || '/frames/task.1/frame_' || i || '.png'`
			f.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				INSERT INTO frames (job_id, frame, task_id, status, worker, render_seconds, attempts, object_key, size_bytes, error, updated_at)
				SELECT ?, i, 'task', 'completed', 'node-a', 1.5, 1, `+key+`, 123456, '', ? FROM n`,
				farm.MaxFramesPerJob, job.ID, job.ID, time.Now().UTC())
			f.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				INSERT INTO frame_outputs (job_id, frame, position, kind, view, composite_node_name, file_name, relative_path, object_key, size_bytes)
				SELECT ?, i, 0, 'frame', NULL, '', 'frame_' || i || '.png', 'frame_' || i || '.png', `+key+`, 123456 FROM n`,
				farm.MaxFramesPerJob, job.ID, job.ID)
			if c.s3 {
				cfg, err := objstore.ParseS3URL(testbackends.S3Bucket(b).Storage(""))
				if err != nil {
					b.Fatal(err)
				}
				if f.api.objects, err = objstore.NewS3(f.Ctx, cfg); err != nil {
					b.Fatal(err)
				}
			}
			for _, q := range []struct {
				name   string
				q      farm.DownloadsQuery
				frames int
			}{
				{"every-frame", farm.DownloadsQuery{}, farm.MaxFramesPerJob},
				// A page of the dashboard's grid of the job's frames.
				{"frames=50001-51000", farm.DownloadsQuery{Frames: &farm.FrameRange{Start: 50_001, End: 51_000, Step: 1}}, 1000},
			} {
				b.Run(q.name, func(b *testing.B) {
					var size int
					for b.Loop() {
						d, err := f.api.Downloads(f.Ctx, f.P, job.ID, q.q)
						if err != nil || len(d.Frames) != q.frames {
							b.Fatalf("%d frames, %v", len(d.Frames), err)
						}
						body, err := json.Marshal(d)
						if err != nil {
							b.Fatal(err)
						}
						size = len(body)
					}
					b.ReportMetric(float64(size), "body-bytes")
				})
			}
		})
	}
}
