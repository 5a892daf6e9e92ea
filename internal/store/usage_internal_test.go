package store

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// eachDialectAndZone runs test on a store of each database, fresh and
// migrated; on PostgreSQL once in a session whose time zone is UTC, and
// once in each of zones, so that a day taken in the session's zone
// rather than in UTC shows.
func eachDialectAndZone(t *testing.T, zones []string, test func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "farm.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
	for _, zone := range append([]string{"UTC"}, zones...) {
		t.Run("postgres/"+zone, func(t *testing.T) {
			t.Parallel()
			dsn, err := url.Parse(testbackends.PostgresDatabase(t, ""))
			if err != nil {
				t.Fatal(err)
			}
			q := dsn.Query()
			q.Set("timezone", zone) // a parameter of the session
			dsn.RawQuery = q.Encode()
			s, err := OpenPostgres(t.Context(), dsn.String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			test(t, s)
		})
	}
}

// usageSeed writes what a usage report sums, as the farm records it.
type usageSeed struct {
	t  *testing.T
	s  *Store
	ws string
	n  int
}

func newUsageSeed(t *testing.T, s *Store, workspace string) *usageSeed {
	t.Helper()
	ws, err := s.EnsureWorkspace(t.Context(), workspace)
	if err != nil {
		t.Fatal(err)
	}
	return &usageSeed{t: t, s: s, ws: ws.ID}
}

func (u *usageSeed) exec(query string, args ...any) {
	u.t.Helper()
	if _, err := u.s.exec(u.t.Context(), query, args...); err != nil {
		u.t.Fatalf("%s: %v", query, err)
	}
}

// job makes a job at created whose input is inputBytes, with filesBytes
// of zips and video and logBytes of its own logs.
func (u *usageSeed) job(id string, created time.Time, inputBytes, filesBytes, logBytes int64) string {
	u.t.Helper()
	id = u.ws[:8] + "-" + id
	j := &farm.Job{ID: id, Status: farm.StatusRendering, WorkspaceID: u.ws, UserID: "key-1", CreatedAt: created, UpdatedAt: created, Slug: "slug-" + id}
	if err := u.s.InsertJob(u.t.Context(), j); err != nil {
		u.t.Fatal(err)
	}
	u.exec(`UPDATE jobs SET files_bytes = ?, log_bytes = ? WHERE id = ?`, filesBytes, logBytes, id)
	if inputBytes > 0 {
		err := u.s.InsertUpload(u.t.Context(), Upload{Slug: j.Slug, WorkspaceID: u.ws, FileName: "scene.blend", FileType: "blend",
			ObjectKey: "uploads/" + j.Slug + "/scene.blend", CreatedAt: created, ExpiresAt: created.Add(time.Hour)})
		if err != nil {
			u.t.Fatal(err)
		}
		u.exec(`UPDATE uploads SET job_id = ?, size_bytes = ? WHERE slug = ?`, id, inputBytes, j.Slug)
	}
	return id
}

// chunk is a render chunk of job that ended at ended, having recorded
// cpu worker-seconds and gpu GPU-seconds, and logBytes of Blender log.
func (u *usageSeed) chunk(job string, ended time.Time, cpu, gpu float64, logBytes int64) {
	u.t.Helper()
	u.n++
	id := fmt.Sprintf("%s-c%d", job, u.n)
	err := u.s.InsertTask(u.t.Context(), Task{ID: id, JobID: job, Kind: TaskRender, Chunk: u.n, Status: TaskDone, Generation: 1,
		CreatedAt: ended, UpdatedAt: ended, WorkspaceID: u.ws})
	if err != nil {
		u.t.Fatal(err)
	}
	u.exec(`UPDATE tasks SET finished_at = ?, worker_seconds = ?, gpu_seconds = ?, log_bytes = ? WHERE id = ?`, ended, cpu, gpu, logBytes, id)
}

// frame is frame n of job, last changed at changed; a frame whose files
// were recorded one by one has outputs, one size each.
func (u *usageSeed) frame(job string, n int, status farm.FrameStatus, changed time.Time, size int64, outputs ...int64) {
	u.t.Helper()
	err := u.s.InsertFrame(u.t.Context(), Frame{JobID: job, Frame: n, TaskID: job + "-c", Status: status, RenderSeconds: 1, SizeBytes: size, UpdatedAt: changed})
	if err != nil {
		u.t.Fatal(err)
	}
	var files []farm.FrameOutput
	for i, o := range outputs {
		files = append(files, farm.FrameOutput{Kind: farm.OutputFrame, FileName: fmt.Sprintf("f%d_%d.png", n, i), RelativePath: fmt.Sprintf("f%d_%d.png", n, i),
			ObjectKey: fmt.Sprintf("jobs/%s/frames/%d/%d", job, n, i), SizeBytes: o})
	}
	if err := u.s.InsertFrameOutputs(u.t.Context(), job, n, files); err != nil {
		u.t.Fatal(err)
	}
}

// download is bytes served of job's files on day (YYYY-MM-DD).
func (u *usageSeed) download(job, day string, bytes int64) {
	u.t.Helper()
	u.exec(`INSERT INTO downloads (workspace_id, job_id, day, bytes) VALUES (?, ?, ?, ?)`, u.ws, job, day, bytes)
}

// A day of usage is a UTC day, on both databases and whatever the
// session's time zone: a chunk that ends and a frame that completes at
// 23:59:59.9 count on that day, and those at 00:00:00 on the next; a job
// made at 23:59:59.999999 stores its input on its day. A period that
// starts at midnight takes what happened at midnight and nothing of the
// day before; one that ends at midnight takes nothing of the next day.
func TestAUsageDayIsAUTCDayToTheLastInstant(t *testing.T) {
	t.Parallel()
	eachDialectAndZone(t, []string{"America/Sao_Paulo", "Pacific/Kiritimati"}, func(t *testing.T, s *Store) {
		ctx := t.Context()
		seed := newUsageSeed(t, s, "studio")
		midnight := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
		lastTenth := midnight.Add(-100 * time.Millisecond)         // 2026-12-03 23:59:59.9
		lastMicro := midnight.Add(-time.Microsecond)               // 2026-12-03 23:59:59.999999
		late := seed.job("late", lastMicro, 1000, 0, 0)            // stored on the 3rd
		early := seed.job("early", midnight, 2000, 0, 0)           // on the 4th
		seed.chunk(late, lastTenth, 10, 0, 0)                      // the 3rd
		seed.chunk(early, midnight, 20, 0, 0)                      // the 4th
		seed.chunk(early, midnight.Add(time.Microsecond), 0, 3, 0) // the 4th, on GPUs
		seed.frame(late, 1, farm.FrameCompleted, lastTenth, 100)
		seed.frame(early, 1, farm.FrameCompleted, midnight, 200)
		seed.download(late, "2026-12-03", 7)
		seed.download(early, "2026-12-04", 9)

		day := func(d string, cpu, gpu float64, frames int, stored, served int64) farm.UsageRow {
			return farm.UsageRow{Day: d, RenderSeconds: cpu, GPUSeconds: gpu, Frames: frames, BytesStored: stored, BytesTransferred: served}
		}
		third := day("2026-12-03", 10, 0, 1, 1100, 7)
		fourth := day("2026-12-04", 20, 3, 1, 2200, 9)
		for _, c := range []struct {
			name     string
			from, to time.Time
			want     []farm.UsageRow
		}{
			{"both days", midnight.Add(-24 * time.Hour), midnight.Add(24 * time.Hour), []farm.UsageRow{third, fourth}},
			{"from midnight", midnight, midnight.Add(24 * time.Hour), []farm.UsageRow{fourth}},
			{"to midnight", midnight.Add(-24 * time.Hour), midnight, []farm.UsageRow{third}},
		} {
			u, err := s.WorkspaceUsage(ctx, seed.ws, c.from, c.to, farm.UsageByDay)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(u.Rows) != fmt.Sprint(c.want) {
				t.Errorf("%s, by day:\n got %+v\nwant %+v", c.name, u.Rows, c.want)
			}
		}
	})
}

// The usage report is summed by the database: one statement, which
// answers a row per day (or job) of the report, however many chunks and
// frames the period holds. Here 2 jobs of 60 one-frame chunks over 3
// days.
func TestUsageReadsARowPerDayOrJobNotPerChunk(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		seed := newUsageSeed(t, s, "studio")
		start := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
		for _, name := range []string{"a", "b"} {
			job := seed.job(name, start, 1000, 0, 0)
			for i := range 60 {
				ended := start.Add(time.Duration(i) * time.Hour)
				seed.chunk(job, ended, 4, 0, 0)
				seed.frame(job, i+1, farm.FrameCompleted, ended, 100)
			}
		}
		cost := countReads(t, s)
		for _, c := range []struct {
			groupBy string
			rows    int
		}{{farm.UsageByDay, 3}, {farm.UsageByJob, 2}} {
			cost.reset()
			u, err := s.WorkspaceUsage(ctx, seed.ws, start.Add(-time.Hour), start.Add(72*time.Hour), c.groupBy)
			if err != nil {
				t.Fatal(err)
			}
			if len(u.Rows) != c.rows || u.Total.Frames != 120 || u.Total.RenderSeconds != 480 {
				t.Fatalf("usage by %s = %+v; want %d rows, 120 frames, 480 worker-seconds", c.groupBy, u, c.rows)
			}
			if statements, rows := cost.counted(); statements != 1 || rows != c.rows {
				t.Errorf("usage by %s read %d rows in %d statements; want its %d rows in 1", c.groupBy, rows, statements, c.rows)
			}
		}
	})
}

// The database's sums are the sums of what it holds: on a workspace with
// chunks on CPUs and GPUs and without seconds, frames completed or not,
// with files recorded one by one or not, a job whose files were deleted,
// uploads, logs, downloads inside the period and outside, and another
// workspace beside it, the report (by day and by job, for the workspace
// and for every one) is what adding up every row in Go makes of it, as
// the report did before the database summed.
func TestUsageSumsWhatAddingUpEveryRowDoes(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		from := time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
		to := from.Add(5 * 24 * time.Hour)
		var workspaces []string
		for w, name := range []string{"studio", "other"} {
			seed := newUsageSeed(t, s, name)
			workspaces = append(workspaces, seed.ws)
			for j := range 4 {
				created := from.Add(time.Duration(j*31-20) * time.Hour) // the first before the period
				job := seed.job(fmt.Sprint(j), created, int64(1000*(j+1)), int64(50*j), int64(3*j))
				if j == 2 {
					seed.exec(`UPDATE jobs SET output_deleted = ? WHERE id = ?`, true, job)
				}
				for c := range 12 {
					ended := created.Add(time.Duration(c*7) * time.Hour).Add(time.Duration(c) * 123457 * time.Microsecond)
					cpu, gpu := 1.0/3+float64(c)*0.7+float64(w), 0.0
					switch c % 4 {
					case 1:
						cpu, gpu = 0, 2.5*float64(c)
					case 3:
						cpu = 0 // a chunk that rendered nothing
					}
					seed.chunk(job, ended, cpu, gpu, int64(c))
					status := farm.FrameCompleted
					if c%5 == 4 {
						status = farm.FrameFailed
					}
					if c%2 == 0 {
						seed.frame(job, c+1, status, ended, 100+int64(c))
					} else {
						seed.frame(job, c+1, status, ended, 100, 30, 40+int64(c))
					}
				}
				for d := -2; d < 7; d++ {
					seed.download(job, from.AddDate(0, 0, d).Format(time.DateOnly), int64(10*(d+3)+j))
				}
			}
			// Jobs that ended before the period: one two hours before it
			// starts, with a frame stamped in it by a worker whose clock
			// ran ahead (counted), and one long before, whose frames are
			// all older than the period.
			for _, ended := range []struct {
				name        string
				status      farm.Status
				at          time.Time
				frameStamps []time.Time
			}{
				{"ended-just-before", farm.StatusCanceled, from.Add(-2 * time.Hour), []time.Time{from.Add(-3 * time.Hour), from.Add(time.Minute)}},
				{"ended-long-before", farm.StatusCompleted, from.AddDate(0, 0, -50), []time.Time{from.AddDate(0, 0, -51)}},
			} {
				job := seed.job(ended.name, ended.at.Add(-time.Hour), 10, 0, 0)
				for n, stamp := range ended.frameStamps {
					seed.frame(job, n+1, farm.FrameCompleted, stamp, 77)
				}
				seed.exec(`UPDATE jobs SET status = ?, updated_at = ? WHERE id = ?`, ended.status, ended.at, job)
			}
		}
		for _, ws := range append(workspaces, "") {
			for _, groupBy := range []string{farm.UsageByDay, farm.UsageByJob} {
				got, err := s.WorkspaceUsage(ctx, ws, from, to, groupBy)
				if err != nil {
					t.Fatal(err)
				}
				want, err := usageSummedInGo(&s.Queries, ctx, ws, from, to, groupBy)
				if err != nil {
					t.Fatal(err)
				}
				if len(want.Rows) < 4 {
					t.Fatalf("the seeded workspace %q has %d rows by %s; the test needs more", ws, len(want.Rows), groupBy)
				}
				if !sameUsage(got, want) {
					t.Errorf("usage of %q by %s:\n got %+v\nwant %+v", ws, groupBy, got, want)
				}
			}
		}
	})
}

// sameUsage is a report equal to want but for the last bits of its sums
// of seconds, which another order of adding changes.
func sameUsage(got, want farm.Usage) bool {
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	same := func(a, b farm.UsageRow) bool {
		return a.Day == b.Day && a.JobID == b.JobID && a.Frames == b.Frames && a.BytesStored == b.BytesStored &&
			a.BytesTransferred == b.BytesTransferred && close(a.RenderSeconds, b.RenderSeconds) && close(a.GPUSeconds, b.GPUSeconds)
	}
	if !got.From.Equal(want.From) || !got.To.Equal(want.To) || got.GroupBy != want.GroupBy || len(got.Rows) != len(want.Rows) || !same(got.Total, want.Total) {
		return false
	}
	for i := range got.Rows {
		if !same(got.Rows[i], want.Rows[i]) {
			return false
		}
	}
	return true
}

// usageSummedInGo is the usage report as it was made before the database
// summed it: every chunk, frame, job and download of the period read, and
// added up here.
func usageSummedInGo(q *Queries, ctx context.Context, workspaceID string, from, to time.Time, groupBy string) (farm.Usage, error) {
	u := farm.Usage{From: from.UTC(), To: to.UTC(), GroupBy: groupBy}
	rows := map[string]*farm.UsageRow{}
	row := func(jobID string, at time.Time) *farm.UsageRow {
		key := jobID
		if groupBy == farm.UsageByDay {
			key = at.UTC().Format(time.DateOnly)
		}
		r, ok := rows[key]
		if !ok {
			r = &farm.UsageRow{}
			if groupBy == farm.UsageByDay {
				r.Day = key
			} else {
				r.JobID = key
			}
			rows[key] = r
		}
		return r
	}
	scope, args := "", []any{from.UTC(), to.UTC()}
	if workspaceID != "" {
		scope, args = " AND j.workspace_id = ?", append(args, workspaceID)
	}
	type scanned struct {
		jobID string
		at    time.Time
		n     float64
		bytes int64
	}
	read := func(what, query string, add func(r *farm.UsageRow, s scanned)) error {
		rs, err := q.query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("usage: %s: %w", what, err)
		}
		defer rs.Close()
		for rs.Next() {
			var s scanned
			if err := rs.Scan(&s.jobID, &s.at, &s.n, &s.bytes); err != nil {
				return fmt.Errorf("usage: %s: %w", what, err)
			}
			add(row(s.jobID, s.at), s)
		}
		return rs.Err()
	}
	// Chunks ended in the period.
	err := read("chunks", `SELECT t.job_id, t.finished_at, t.worker_seconds, 0 FROM tasks t JOIN jobs j ON j.id = t.job_id
		WHERE t.finished_at >= ? AND t.finished_at < ? AND t.worker_seconds > 0`+scope,
		func(r *farm.UsageRow, s scanned) { r.RenderSeconds += s.n })
	if err != nil {
		return u, err
	}
	err = read("chunks on GPUs", `SELECT t.job_id, t.finished_at, t.gpu_seconds, 0 FROM tasks t JOIN jobs j ON j.id = t.job_id
		WHERE t.finished_at >= ? AND t.finished_at < ? AND t.gpu_seconds > 0`+scope,
		func(r *farm.UsageRow, s scanned) { r.GPUSeconds += s.n })
	if err != nil {
		return u, err
	}
	// Frames completed in the period, and the bytes their files hold.
	err = read("frames", `SELECT f.job_id, f.updated_at, 1, CASE WHEN j.output_deleted THEN 0 ELSE
			CAST(COALESCE((SELECT SUM(o.size_bytes) FROM frame_outputs o WHERE o.job_id = f.job_id AND o.frame = f.frame), f.size_bytes) AS BIGINT) END
		FROM frames f JOIN jobs j ON j.id = f.job_id
		WHERE f.updated_at >= ? AND f.updated_at < ? AND f.status = '`+string(farm.FrameCompleted)+`'`+scope,
		func(r *farm.UsageRow, s scanned) { r.Frames++; r.BytesStored += s.bytes })
	if err != nil {
		return u, err
	}
	// Jobs made in the period: their inputs, zips, preview videos and
	// logs (an upload that never became a job belongs to no job, and is in
	// the storage total only).
	err = read("inputs", `SELECT j.id, j.created_at, 0, CASE WHEN j.output_deleted THEN 0 ELSE COALESCE(up.size_bytes, 0) + j.files_bytes + j.log_bytes
			+ COALESCE((SELECT SUM(t.log_bytes) FROM tasks t WHERE t.job_id = j.id), 0) END
		FROM jobs j LEFT JOIN uploads up ON up.job_id = j.id
		WHERE j.created_at >= ? AND j.created_at < ?`+scope,
		func(r *farm.UsageRow, s scanned) { r.BytesStored += s.bytes })
	if err != nil {
		return u, err
	}
	// Downloads served in the period, by day.
	dayArgs := []any{from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)}
	dscope := ""
	if workspaceID != "" {
		dscope, dayArgs = " AND d.workspace_id = ?", append(dayArgs, workspaceID)
	}
	ds, err := q.query(ctx, `SELECT d.job_id, d.day, d.bytes FROM downloads d WHERE d.day >= ? AND d.day <= ?`+dscope, dayArgs...)
	if err != nil {
		return u, fmt.Errorf("usage: downloads: %w", err)
	}
	defer ds.Close()
	for ds.Next() {
		var jobID, day string
		var bytes int64
		if err := ds.Scan(&jobID, &day, &bytes); err != nil {
			return u, fmt.Errorf("usage: downloads: %w", err)
		}
		at, err := time.Parse(time.DateOnly, day)
		if err != nil || at.Before(from.UTC().Truncate(24*time.Hour)) || !at.Before(to.UTC()) {
			continue
		}
		row(jobID, at).BytesTransferred += bytes
	}
	if err := ds.Err(); err != nil {
		return u, err
	}
	u.Rows = make([]farm.UsageRow, 0, len(rows))
	for _, r := range rows {
		u.Rows = append(u.Rows, *r)
		u.Total.Add(*r)
	}
	sort.Slice(u.Rows, func(i, j int) bool {
		if u.Rows[i].Day != u.Rows[j].Day {
			return u.Rows[i].Day < u.Rows[j].Day
		}
		return u.Rows[i].JobID < u.Rows[j].JobID
	})
	return u, nil
}

// BenchmarkUsageOfAWorkspaceWithOldFrames is a 30-day usage report of a
// workspace holding 500 jobs of 1,000 frames, completed and ended 200
// days earlier, and one job of this month: the report reads the frames of
// the jobs that could have completed one in the period, not all 500,000.
//
//	go test ./internal/store/ -run '^$' -bench UsageOfAWorkspaceWithOldFrames
func BenchmarkUsageOfAWorkspaceWithOldFrames(b *testing.B) {
	open := map[string]func() (*Store, error){
		"sqlite":   func() (*Store, error) { return OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "farm.db")) },
		"postgres": func() (*Store, error) { return OpenPostgres(b.Context(), testbackends.PostgresDatabase(b, "")) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, err := open[name]()
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := b.Context()
			ws, err := s.EnsureWorkspace(ctx, "studio")
			if err != nil {
				b.Fatal(err)
			}
			old := time.Now().UTC().AddDate(0, 0, -200)
			for i := range 500 {
				id := fmt.Sprintf("old-%03d", i)
				err := s.InsertJob(ctx, &farm.Job{ID: id, Status: farm.StatusCompleted, WorkspaceID: ws.ID, UserID: "key-1", CreatedAt: old, UpdatedAt: old, Slug: "slug-" + id})
				if err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.exec(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
				INSERT INTO frames (job_id, frame, task_id, status, updated_at)
				SELECT j.id, n.i, 'task', 'completed', ? FROM jobs j CROSS JOIN n`, old); err != nil {
				b.Fatal(err)
			}
			recent := time.Now().UTC().Add(-time.Hour)
			if err := s.InsertJob(ctx, &farm.Job{ID: "recent", Status: farm.StatusRendering, WorkspaceID: ws.ID, UserID: "key-1", CreatedAt: recent, UpdatedAt: recent, Slug: "slug-recent"}); err != nil {
				b.Fatal(err)
			}
			from, to := time.Now().AddDate(0, 0, -30), time.Now()
			for b.Loop() {
				if _, err := s.WorkspaceUsage(ctx, ws.ID, from, to, farm.UsageByDay); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
