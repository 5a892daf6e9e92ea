package benchkit

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// Lab is where a benchmark program runs its farms: a work directory
// removed at exit, the renderfarm binary built into it, and, when a
// measurement asks, PostgreSQL databases and a bucket on the servers that
// scripts/services.sh starts. The farms are real processes, so that their
// CPU and memory can be measured apart from the benchmark's own.
type Lab struct {
	Ctx    context.Context
	Work   string
	Binary string
	procs  int // processes started, to name their logs

	postgres *testbackends.Postgres
	bucket   *testbackends.Bucket
	prefixes int // bucket prefixes handed out
}

// NewLab makes the work directory and builds the binary, from the
// repository's root (the working directory of every benchmark program).
func NewLab(ctx context.Context) *Lab {
	work, err := os.MkdirTemp("", "renderfarm-bench-")
	if err != nil {
		Fatalf("%v", err)
	}
	AtExit(func() { os.RemoveAll(work) })
	l := &Lab{Ctx: ctx, Work: work, Binary: filepath.Join(work, "renderfarm")}
	build := exec.Command("go", "build", "-o", l.Binary, "./cmd/renderfarm")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		Fatalf("build renderfarm: %v", err)
	}
	return l
}

// TempDir makes a directory in the work directory.
func (l *Lab) TempDir(name string) string {
	dir, err := os.MkdirTemp(l.Work, name+"-")
	if err != nil {
		Fatalf("%v", err)
	}
	return dir
}

// Sleep waits d, or ends the program if it is interrupted.
func (l *Lab) Sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-l.Ctx.Done():
		Fatalf("interrupted")
	}
}

// WaitFor checks cond every 10 ms until it holds, and ends the program if
// it does not within limit.
func (l *Lab) WaitFor(what string, limit time.Duration, cond func() bool) {
	l.WaitForEvery(what, limit, 10*time.Millisecond, cond)
}

// WaitForEvery is WaitFor checking cond every interval: for a check that
// costs what the benchmark measures (the farm's database).
func (l *Lab) WaitForEvery(what string, limit, interval time.Duration, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			Fatalf("waited %s for %s", limit, what)
		}
		l.Sleep(interval)
	}
}

// Database makes a PostgreSQL database for one farm and answers its URL;
// it is dropped at exit.
func (l *Lab) Database() string {
	if l.postgres == nil {
		p, err := testbackends.OpenPostgres()
		if err != nil {
			Fatalf("%v", err)
		}
		l.postgres = p
		AtExit(func() { p.Close() })
	}
	dsn, drop, err := l.postgres.CreateDatabase(l.Ctx, "")
	if err != nil {
		Fatalf("%v", err)
	}
	AtExit(func() {
		if err := drop(); err != nil {
			fmt.Fprintf(os.Stderr, "drop a benchmark database: %v\n", err)
		}
	})
	return dsn
}

// Storage is a prefix of the lab's bucket of its own for one farm, as a
// --storage URL; the bucket is removed at exit.
func (l *Lab) Storage(name string) string {
	if l.bucket == nil {
		s3, err := testbackends.OpenS3()
		if err != nil {
			Fatalf("%v", err)
		}
		if l.bucket, err = s3.CreateBucket(l.Ctx); err != nil {
			Fatalf("%v", err)
		}
		bucket := l.bucket
		AtExit(func() {
			if err := bucket.Remove(); err != nil {
				fmt.Fprintf(os.Stderr, "remove bucket %s: %v\n", bucket.Name, err)
			}
		})
	}
	l.prefixes++
	return l.bucket.Storage(fmt.Sprintf("%s-%d/", name, l.prefixes))
}

// Farm is one farm's processes and what they share: the flags every
// process of the farm takes (its database and objects), an API key, and,
// on PostgreSQL, a connection to its database.
type Farm struct {
	lab *Lab
	// Dir is the data directory of a farm on SQLite and local files.
	Dir    string
	Common []string
	// URL is the first API process's.
	URL string
	Key string
	// DB is the farm's database, on PostgreSQL.
	DB    *sql.DB
	procs map[string]*Proc
	order []*Proc
}

// LocalFarm is the one-machine shape: SQLite and files under a data
// directory.
func (l *Lab) LocalFarm(name string) *Farm {
	dir := l.TempDir(name)
	backend := []string{"--data-dir", dir}
	f := l.newFarm(backend, backend)
	f.Dir = dir
	return f
}

// PostgresFarm is a farm on a fresh PostgreSQL database, with its objects
// in a prefix of the bucket of its own, or on this machine's disk when
// bucket is false. extra are flags every process takes too.
func (l *Lab) PostgresFarm(name string, bucket bool, extra ...string) *Farm {
	database := l.Database()
	backend := []string{"--database", database}
	if bucket {
		backend = append(backend, "--storage", l.Storage(name))
	} else {
		backend = append(backend, "--data-dir", l.TempDir(name))
	}
	f := l.newFarm(append(slices.Clip(backend), extra...), backend)
	db, err := sql.Open("pgx", database)
	if err != nil {
		Fatalf("%v", err)
	}
	f.DB = db
	return f
}

// newFarm is a farm whose processes all take common, and whose database
// `keys create` finds with backend.
func (l *Lab) newFarm(common, backend []string) *Farm {
	f := &Farm{lab: l, Common: common, procs: map[string]*Proc{}}
	out, err := exec.CommandContext(l.Ctx, l.Binary, append([]string{"keys", "create", "--workspace", "bench"}, backend...)...).Output()
	if err != nil {
		Fatalf("keys create: %v", err)
	}
	f.Key = strings.TrimSpace(string(out))
	return f
}

// Serve starts `renderfarm serve` with args; the first one is the farm's
// address.
func (f *Farm) Serve(name string, args ...string) *Proc {
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir", f.lab.TempDir(name)}, args...)
	// A flag given twice keeps the last: the farm's own flags (its
	// --data-dir among them) win.
	p := f.start(name, "renderfarm serving at ", append(args, f.Common...)...)
	if f.URL == "" {
		f.URL = p.URL
	}
	return p
}

// Worker starts a render node named name.
func (f *Farm) Worker(name string, args ...string) *Proc {
	args = append([]string{"worker", "--worker-name", name, "--work-dir", f.lab.TempDir(name)}, args...)
	return f.start(name, "renderfarm worker ", append(args, f.Common...)...)
}

func (f *Farm) start(name, ready string, args ...string) *Proc {
	f.lab.procs++
	p := Start(f.lab.Ctx, f.lab.Binary, filepath.Join(f.lab.Work, fmt.Sprintf("%03d-%s.log", f.lab.procs, name)), ready, args...)
	f.procs[name] = p
	f.order = append(f.order, p)
	return p
}

// Procs are the farm's processes, in the order they started.
func (f *Farm) Procs() []*Proc { return f.order }

// Proc is the farm's process started under name.
func (f *Farm) Proc(name string) *Proc { return f.procs[name] }

// Stop stops the farm's processes, the last started first.
func (f *Farm) Stop() {
	for _, p := range slices.Backward(f.order) {
		p.Stop()
	}
	f.order, f.procs, f.URL = nil, map[string]*Proc{}, ""
	if f.DB != nil {
		f.DB.Close()
		f.DB = nil
	}
}

// Logs is the tail of every process's log, for failures.
func (f *Farm) Logs() string {
	var s strings.Builder
	for _, p := range f.order {
		fmt.Fprintf(&s, "--- %s\n%s\n", p.LogPath, Tail(p.LogPath, 30))
	}
	return s.String()
}

// Client is an API client of the farm polling every poll.
func (f *Farm) Client(poll time.Duration) *client.Client {
	return client.New(f.URL, f.Key, client.WithPollInterval(poll))
}

// ValidatedJob uploads the file at path through c, makes a job of it and
// waits until it is validated, so that what follows measures rendering
// alone; it answers the job's id.
func (f *Farm) ValidatedJob(c *client.Client, path string) string {
	ctx := f.lab.Ctx
	slug, err := c.UploadFile(ctx, path, nil)
	if err != nil {
		Fatalf("upload %s: %v", filepath.Base(path), err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		Fatalf("create job: %v", err)
	}
	if _, err := c.Validate(ctx, job.ID); err != nil {
		Fatalf("validate: %v", err)
	}
	if _, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated), nil); err != nil {
		Fatalf("validation: %v\n%s", err, f.Logs())
	}
	return job.ID
}
