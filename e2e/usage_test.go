package e2e

import (
	"fmt"
	"io/fs"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// TestUsageSumsTheChunksRecordedSeconds renders a job in chunks on a farm
// whose Blender renders with 2 threads and downloads its frames' zip:
// each chunk records its frames' Blender time times 2 as its
// worker-seconds, GET /usage (by job and by day) answers their sum within
// 1 %, the frames, the bytes every object of the job holds (its input,
// frames, zip, preview and Blender logs), and the bytes of the zip served; `renderfarm usage --csv` answers the same.
func TestUsageSumsTheChunksRecordedSeconds(t *testing.T) {
	f := startFarm(t, "--blender-threads", "2")
	c := f.client("studio")
	ctx := testContext(t)
	job := submit(ctx, t, c, scene("cube.blend"))
	validate(ctx, t, c, job.ID)
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-4"}, SampleCount: client.Int(2), ChunkSize: client.Int(2)})
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s", done.Status)
	}
	downloads, err := c.Downloads(ctx, job.ID)
	if err != nil || downloads.Transforms.FramesZip == nil {
		t.Fatalf("downloads: %+v, %v", downloads, err)
	}
	served, err := c.DownloadFile(ctx, *downloads.Transforms.FramesZip, filepath.Join(t.TempDir(), "frames.zip"))
	if err != nil || served == 0 {
		t.Fatalf("download the zip: %d bytes, %v", served, err)
	}

	// What the chunks recorded, and what they are made of.
	db := f.Main().Store().DB()
	var chunks int
	var recorded, blenderSeconds float64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), SUM(worker_seconds) FROM tasks WHERE job_id = ? AND kind = 'render' AND finished_at IS NOT NULL`, job.ID).Scan(&chunks, &recorded); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT SUM(render_seconds) FROM frames WHERE job_id = ?`, job.ID).Scan(&blenderSeconds); err != nil {
		t.Fatal(err)
	}
	if chunks != 2 || blenderSeconds <= 0 || math.Abs(recorded-2*blenderSeconds) > 0.01*recorded {
		t.Fatalf("%d chunks recorded %.3f worker-seconds for %.3f s of Blender; want 2 chunks, 2 threads × Blender's time", chunks, recorded, blenderSeconds)
	}
	// What the job's objects hold on the local store: its input, frames,
	// zip, preview video and the Blender logs kept for it.
	var stored int64
	var files []string
	err = filepath.WalkDir(filepath.Join(f.DataDir, "objects", "jobs", job.ID), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		stored += info.Size()
		files = append(files, fmt.Sprintf("%s (%d bytes)", path, info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(files, func(f string) bool { return strings.Contains(f, "/logs/") }) {
		t.Errorf("the job's objects are %v; want a Blender log among them", files)
	}
	defer func() {
		if t.Failed() {
			t.Logf("the job's objects: %s", strings.Join(files, ", "))
		}
	}()

	for _, groupBy := range []string{"job", "day"} {
		u, err := c.Usage(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Minute), groupBy)
		if err != nil {
			t.Fatalf("GET /usage?groupBy=%s: %v", groupBy, err)
		}
		if len(u.Rows) != 1 || (groupBy == "job" && u.Rows[0].JobID != job.ID) || (groupBy == "day" && u.Rows[0].Day != time.Now().UTC().Format(time.DateOnly)) {
			t.Fatalf("usage by %s: rows %+v, want one for the job's %s", groupBy, u.Rows, groupBy)
		}
		got := u.Total
		if math.Abs(got.RenderSeconds-recorded) > 0.01*recorded || got.Frames != 4 || got.BytesStored != stored || got.BytesTransferred != served || u.Rows[0] != withKey(got, u.Rows[0]) {
			t.Errorf("usage by %s = %+v; want %.3f render seconds, 4 frames, %d bytes stored, %d transferred", groupBy, u, recorded, stored, served)
		}
	}
	// A grouping the API document does not allow, sent on purpose.
	if _, err := f.lenientClient("studio").Usage(ctx, time.Time{}, time.Time{}, "week"); !client.HasCode(err, client.CodeInvalidRequest) {
		t.Errorf("usage by week: %v, want INVALID_REQUEST", err)
	}
	if _, err := c.Usage(ctx, time.Now().Add(-400*24*time.Hour), time.Time{}, ""); !client.HasCode(err, client.CodeInvalidRequest) {
		t.Errorf("usage over 400 days: %v, want INVALID_REQUEST naming the limit", err)
	}

	out, err := exec.Command(binary(t), "usage", "--since", "1d", "--csv", "--data-dir", f.DataDir).Output()
	if err != nil {
		t.Fatalf("renderfarm usage --csv: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "studio,"+time.Now().UTC().Format(time.DateOnly)+",") || !strings.HasSuffix(lines[1], ",4,"+itoa(stored)+","+itoa(served)) {
		t.Errorf("renderfarm usage --csv =\n%s\nwant a header and studio's day: 4 frames, %d bytes stored, %d served", out, stored, served)
	}
}

// withKey is r with the day and job of row, to compare a row's amounts
// with the total's.
func withKey(r, row client.UsageRow) client.UsageRow {
	r.Day, r.JobID = row.Day, row.JobID
	return r
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
