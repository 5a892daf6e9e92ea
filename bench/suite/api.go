package main

import (
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"github.com/renderfarm/renderfarm/internal/store"
)

// ---- 4. api: progress against /healthz, GET /jobs with 100,000 jobs ----

const listedJobs = 100_000

// wrkResult is what wrk measured of one URL.
type wrkResult struct {
	rps float64
	p99 time.Duration
}

// listCase is one GET /jobs query.
type listCase struct {
	name, query string
}

var listCases = []listCase{
	{"newest 10, the default page", ""},
	{"newest 100", "?pageSize=100"},
	{"failed ones, newest 10", "?status=failed"},
	{"page 1,000 of 100", "?page=1000&pageSize=100"},
}

// The indexes GET /jobs had before migrations 0004 and 0005 (those of 0001), to measure it without.
const oldJobIndexes = `DROP INDEX jobs_by_workspace;
DROP INDEX jobs_by_workspace_status;
CREATE INDEX jobs_by_workspace ON jobs (workspace_id, created_at DESC, id);
CREATE INDEX jobs_by_workspace_status ON jobs (workspace_id, status, created_at DESC, id);`

func (b *bench) measureAPI() {
	fmt.Printf("\n== 4. api: GET /jobs/{id}/progress against /healthz at 64 connections; GET /jobs with %s jobs\n", thousands(listedJobs))
	meter := benchkit.StartCPUMeter()
	// A job with 24 frames done, rendered small: its progress is what a
	// client polls.
	f := b.localFarm("api")
	f.serve("--workers", "1")
	job := f.validatedJob(b.scene)
	f.render(job, renderSettings{frames: "1-24", width: 64, height: 36, samples: 1, chunk: 24}, 1)
	f.Stop()
	dbPath := filepath.Join(f.Dir, "renderfarm.db")
	start := time.Now()
	fillJobs(dbPath, job, listedJobs)
	checkpoint(dbPath)
	fmt.Printf("inserted %s jobs in %s\n", thousands(listedJobs), secs(time.Since(start)))

	f.serve("--workers", "1")
	progressURL := f.URL + "/api/external/v1/jobs/" + job + "/progress"
	auth := "Authorization: Bearer " + f.Key
	var progress, health []wrkResult
	list := map[string][]wrkResult{}
	for run := 1; run <= b.runs; run++ {
		p := b.wrk(64, 5*time.Second, progressURL, auth)
		h := b.wrk(64, 5*time.Second, f.URL+"/healthz", "")
		progress, health = append(progress, p), append(health, h)
		fmt.Printf("api run %d: progress %s req/s, p99 %s; healthz %s req/s, p99 %s\n", run, thousands(p.rps), millis(p.p99), thousands(h.rps), millis(h.p99))
		for _, c := range listCases {
			r := b.wrk(1, 2*time.Second, f.URL+"/api/external/v1/jobs"+c.query, auth)
			list[c.name] = append(list[c.name], r)
			fmt.Printf("api run %d: GET /jobs%s: p99 %s, %s req/s\n", run, c.query, millis(r.p99), thousands(r.rps))
		}
	}
	f.Stop()

	// The same lists with the indexes of 0001.
	db := openSQLite(dbPath)
	if _, err := db.ExecContext(b.Ctx, oldJobIndexes); err != nil {
		benchkit.Fatalf("restore the old indexes: %v", err)
	}
	db.Close()
	checkpoint(dbPath)
	f.serve("--workers", "1")
	listOld := map[string][]wrkResult{}
	for run := 1; run <= b.runs; run++ {
		for _, c := range listCases {
			r := b.wrk(1, 2*time.Second, f.URL+"/api/external/v1/jobs"+c.query, auth)
			listOld[c.name] = append(listOld[c.name], r)
			fmt.Printf("api run %d, the indexes of 0001: GET /jobs%s: p99 %s, %s req/s\n", run, c.query, millis(r.p99), thousands(r.rps))
		}
	}
	f.Stop()

	rps := func(rs []wrkResult) float64 {
		var fs []float64
		for _, r := range rs {
			fs = append(fs, r.rps)
		}
		return benchkit.MedianFloat(fs)
	}
	p99 := func(rs []wrkResult) time.Duration {
		return benchkit.Median(rs, func(r wrkResult) time.Duration { return r.p99 })
	}

	var out strings.Builder
	fmt.Fprintf(&out, "4. API, serve --workers 1 on SQLite, %s jobs in the database; wrk (2 threads) on the same 2 cores as serve. GET /jobs/{id}/progress of a job of 24 frames (a body of 2 KiB: the key checked, the job and its frames read) against GET /healthz (no database) at 64 connections for 5 s:\n\n", thousands(listedJobs+1))
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "endpoint\trequests/s\tp99\tratio of requests/s")
	fmt.Fprintf(tw, "GET /healthz\t%s\t%s\t1.00\n", thousands(rps(health)), millis(p99(health)))
	fmt.Fprintf(tw, "GET /jobs/{id}/progress\t%s\t%s\t%.2f\n", thousands(rps(progress)), millis(p99(progress)), rps(progress)/rps(health))
	tw.Flush()
	fmt.Fprintf(&out, "\nGET /jobs with %s jobs in the workspace, one connection for 2 s (one request after another), with the indexes of migration 0005 and with those of 0001:\n\n", thousands(listedJobs+1))
	tw = tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "query\tjobs listed\tp99\trequests/s\tp99 with 0001's\trequests/s with 0001's")
	for _, c := range listCases {
		fmt.Fprintf(tw, "GET /jobs%s\t%s\t%s\t%s\t%s\t%s\n", c.query, c.name, millis(p99(list[c.name])), thousands(rps(list[c.name])),
			millis(p99(listOld[c.name])), thousands(rps(listOld[c.name])))
	}
	tw.Flush()
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	b.detail(out.String())

	ratio := rps(progress) / rps(health)
	b.result(result{"4", "GET /jobs/{id}/progress, 64 connections",
		fmt.Sprintf("%s req/s, p99 %s", thousands(rps(progress)), millis(p99(progress))),
		fmt.Sprintf("/healthz %s req/s, p99 %s", thousands(rps(health)), millis(p99(health))),
		fmt.Sprintf("%.2f", ratio), "≥ 0.5", met(ratio >= 0.5)})
	for _, c := range listCases {
		d := p99(list[c.name])
		b.result(result{"4", fmt.Sprintf("GET /jobs p99, %s jobs, %s", thousands(listedJobs), c.name), millis(d),
			"with 0001's: " + millis(p99(listOld[c.name])), "", "< 50 ms", met(d < 50*time.Millisecond)})
	}
}

// wrk loads url with conns connections for d and reads its requests per
// second and 99th percentile latency. Every answer must be a 2xx.
func (b *bench) wrk(conns int, d time.Duration, url, header string) wrkResult {
	args := []string{"-t", strconv.Itoa(min(conns, 2)), "-c", strconv.Itoa(conns), "-d", d.String(), "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	out, err := exec.CommandContext(b.Ctx, "wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		benchkit.Fatalf("wrk: %v\n%s", err, out)
	}
	var r wrkResult
	inLatency := false
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(fields) == 2:
			r.rps, _ = strconv.ParseFloat(fields[1], 64)
		case strings.Contains(line, "Latency Distribution"):
			inLatency = true
		case inLatency && len(fields) == 2 && fields[0] == "99%":
			r.p99 = wrkDuration(fields[1])
		case strings.Contains(line, "Non-2xx"), strings.Contains(line, "Socket errors"):
			benchkit.Fatalf("wrk %s: %s\n%s", url, strings.TrimSpace(line), out)
		}
	}
	if r.rps == 0 || r.p99 == 0 {
		benchkit.Fatalf("wrk %s: cannot read its output:\n%s", url, out)
	}
	return r
}

// wrkDuration reads wrk's "142.96ms", "9.43us", "1.02s".
func wrkDuration(s string) time.Duration {
	for _, unit := range []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}} {
		if v, ok := strings.CutSuffix(s, unit.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return time.Duration(f * float64(unit.d))
			}
		}
	}
	benchkit.Fatalf("wrk: cannot read the duration %q", s)
	return 0
}

func openSQLite(path string) *sql.DB {
	db, err := sql.Open("sqlite", store.SQLiteDSN(path))
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	db.SetMaxOpenConns(1)
	return db
}

// checkpoint folds SQLite's write-ahead log into the database file, as a
// farm that has run for a while has done: reading 100,000 rows through a
// log of 200 MB is slower, and would make the first measurement unlike
// the second.
func checkpoint(path string) {
	db := openSQLite(path)
	defer db.Close()
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		benchkit.Fatalf("checkpoint %s: %v", path, err)
	}
}

// fillJobs copies the job n times into its workspace, as if the farm had
// run it n times before, one a minute: new ids, older creation times, one
// in 50 failed and one in 97 canceled, the rest completed. Their tasks and
// frames are left out; listing jobs does not read them.
func fillJobs(dbPath, template string, n int) {
	db := openSQLite(dbPath)
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT INTO jobs (id, workspace_id, user_id, slug, status, created_at, updated_at, normalized_seconds,
		failed_reason, requested_config, final_config, analysis, analysis_id, scene_file, output_deleted, files)
		SELECT ?, workspace_id, user_id, slug, ?, ?, ?, normalized_seconds,
		failed_reason, requested_config, final_config, analysis, analysis_id, scene_file, output_deleted, files FROM jobs WHERE id = ?`)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	first := time.Now().UTC().Add(-time.Duration(n+1) * time.Minute).Truncate(time.Microsecond)
	for i := range n {
		status := "completed"
		switch {
		case i%50 == 0:
			status = "failed"
		case i%97 == 0:
			status = "canceled"
		}
		at := first.Add(time.Duration(i) * time.Minute)
		if _, err := stmt.Exec(uuid.NewString(), status, at, at.Add(30*time.Second), template); err != nil {
			benchkit.Fatalf("insert job: %v", err)
		}
	}
	if err := tx.Commit(); err != nil {
		benchkit.Fatalf("%v", err)
	}
}
