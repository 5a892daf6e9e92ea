package node

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// What Blender prints names the farm's directories; the log a client reads
// names the job's files as the job's owner knows them, and no directory of
// the machine.
func TestKeptLogsNameNoPathOfTheFarm(t *testing.T) {
	f := newFixture(t, enginetest.SQLite)
	work := f.node.cfg.WorkDir
	f.node.cfg.BlenderTempDir = filepath.Join(work, "tmp")
	// Each case has a job of its own, whose directory is $JOB below.
	project := &preparedInput{
		BlendPath: filepath.Join("$JOB", "input", "project", "shot", "scenes", "shot.blend"),
		Project:   &blendfile.Project{Root: "shot", BlendPath: "scenes/shot.blend"},
	}
	upload := &preparedInput{BlendPath: filepath.Join(filepath.Dir(work), "objects", "uploads", "slug", "scene.blend")}

	tests := []struct {
		name string
		in   *preparedInput
		line string
		want string
	}{
		{"a project's .blend", project, "Read blend: " + project.BlendPath, "Read blend: <job>/scenes/shot.blend"},
		{"a project's texture beside its folder", project,
			"Error: Cannot read image '" + filepath.Join("$JOB", "input", "project", "shot", "textures", "x.png") + "'",
			"Error: Cannot read image '<job>/textures/x.png'"},
		{"an uploaded .blend read where it is stored", upload,
			"Error: Loading '" + upload.BlendPath + "' failed", "Error: Loading '<job>/scene.blend' failed"},
		{"a frame in the job's output", upload,
			"Saved: '" + filepath.Join("$JOB", "out", "task-1", "frame_0001.png") + "'", "Saved: '<job>/out/task-1/frame_0001.png'"},
		{"Blender's run directory", nil,
			`File "` + filepath.Join(work, "tmp", "renderfarm-blender-123", "session.py") + `", line 9`,
			`File "<blender>/renderfarm-blender-123/session.py", line 9`},
		{"another job's directory", nil, "x " + filepath.Join(work, "other-job", "input") + " y", "x <work>/other-job/input y"},
		{"a line without paths", nil, "Fra:1 Mem:9.05M | Sample 1/4", "Fra:1 Mem:9.05M | Sample 1/4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := f.CreatedJob(f.api)
			jobDir := strings.NewReplacer("$JOB", f.node.jobDir(job.ID))
			line := jobDir.Replace(tt.line)
			var in *preparedInput
			if tt.in != nil {
				in = &preparedInput{BlendPath: jobDir.Replace(tt.in.BlendPath), Project: tt.in.Project}
			}
			paths := f.node.farmPaths(job.ID, in)
			if got := paths.scrub(line); got != tt.want {
				t.Errorf("scrub(%q)\n got %q\nwant %q", line, got, tt.want)
			}
			f.node.keepLog(f.Ctx, nil, engine.TaskRef{JobID: job.ID, TaskID: "task-1"}, "chunk1", []string{"first", line}, paths)
			log, err := f.api.JobLog(f.Ctx, f.P, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(log.Lines, []string{"first", tt.want}) {
				t.Errorf("the kept log reads %q, want %q", log.Lines, []string{"first", tt.want})
			}
		})
	}
}

// Every log a chunk's attempt keeps counts towards its workspace's
// storage once: the log of an attempt that ends the chunk with the
// statement that ends it, and that of an attempt that failed with
// attempts left, which ends nothing, as the attempt ends.
func TestEveryKeptLogIsCountedOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])

		f.blender.willRender(fakeRender{saves: []int{1}, err: &blender.RenderError{Frame: 2, Line: "Error: out of memory", ExitCode: 1}})
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err == nil {
			t.Fatal("the first attempt succeeded; want Blender's error")
		}
		if got := f.Task(ref.TaskID).Status; got != store.TaskWaiting {
			t.Fatalf("the chunk after its failed attempt is %s, want waiting for another", got)
		}
		logs, counted := f.keptLogBytes(job.ID), f.loggedBytes(job.ID)
		if len(f.storedKeys(farm.JobLogsPrefix(job.ID))) != 1 || counted != logs {
			t.Errorf("after the failed attempt: %d bytes of logs counted, %d kept in %d logs; want one log, counted",
				counted, logs, len(f.storedKeys(farm.JobLogsPrefix(job.ID))))
		}

		f.RetryNow(job)
		ref = f.Ref(f.Task(ref.TaskID))
		f.blender.willRender(fakeRender{saves: []int{2}})
		if err := f.renderWork(f.Ctx, ref, 2, enginetest.RenderAttempts); err != nil {
			t.Fatal(err)
		}
		if got := f.Task(ref.TaskID).Status; got != store.TaskDone {
			t.Fatalf("the chunk is %s, want done", got)
		}
		logs, counted = f.keptLogBytes(job.ID), f.loggedBytes(job.ID)
		if len(f.storedKeys(farm.JobLogsPrefix(job.ID))) != 2 || counted != logs {
			t.Errorf("after the chunk ended: %d bytes of logs counted, %d kept in %d logs; want two logs, counted",
				counted, logs, len(f.storedKeys(farm.JobLogsPrefix(job.ID))))
		}
	})
}

// The chunks of a job that end together, in the same millisecond, keep a
// log each.
func TestChunksEndingTogetherKeepALogEach(t *testing.T) {
	f := newFixture(t, enginetest.SQLite)
	job := f.RenderingJob(f.api, 1, 1)
	const chunks = 40
	for i := range chunks {
		ref := engine.TaskRef{JobID: job.ID, TaskID: fmt.Sprintf("task-%d", i), Generation: 1}
		f.node.keepLog(f.Ctx, nil, ref, chunkLogName(ref), []string{"Fra:1 Mem:1M | Rendered"}, farmPaths{})
	}
	if got := len(f.storedKeys(farm.JobLogsPrefix(job.ID))); got != chunks {
		t.Errorf("%d chunks kept %d logs, want one each", chunks, got)
	}
}

// keptLogBytes is the size of the logs kept for job jobID.
func (f *fixture) keptLogBytes(jobID string) int64 {
	f.T.Helper()
	objects, err := f.Objects.List(f.Ctx, farm.JobLogsPrefix(jobID))
	if err != nil {
		f.T.Fatal(err)
	}
	var size int64
	for _, o := range objects {
		size += o.Size
	}
	return size
}

// loggedBytes is what the job's tasks count of its logs.
func (f *fixture) loggedBytes(jobID string) int64 {
	f.T.Helper()
	var size int64
	err := f.Store.DB().QueryRowContext(f.Ctx, f.rebindQuery(`SELECT COALESCE(SUM(log_bytes), 0) FROM tasks WHERE job_id = ?`), jobID).Scan(&size)
	if err != nil {
		f.T.Fatal(err)
	}
	return size
}

// hookBlender is the fake Blender that runs before, once, as the next
// Render begins.
type hookBlender struct {
	*fakeBlender
	before func()
}

func (b *hookBlender) Render(ctx context.Context, job blender.RenderJob, outputRoot string, onEvent func(blender.Event)) (*blender.RenderResult, error) {
	if b.before != nil {
		b.before()
		b.before = nil
	}
	return b.fakeBlender.Render(ctx, job, outputRoot, onEvent)
}

// hookedBucket is the node's object store, which runs beforePut (when
// set) before each Put, with the key, and counts the Puts of each key.
type hookedBucket struct {
	objstore.Store
	mu        sync.Mutex
	beforePut func(key string)
	puts      map[string]int
}

func (b *hookedBucket) Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error) {
	b.mu.Lock()
	hook := b.beforePut
	if b.puts == nil {
		b.puts = map[string]int{}
	}
	b.puts[key]++
	b.mu.Unlock()
	if hook != nil {
		hook(key)
	}
	return b.Store.Put(ctx, key, r, maxBytes)
}

// putsUnder counts the Puts of keys under prefix.
func (b *hookedBucket) putsUnder(prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for key, puts := range b.puts {
		if strings.HasPrefix(key, prefix) {
			n += puts
		}
	}
	return n
}

// onHookedBucket puts the node's object store behind hooks.
func (f *fixture) onHookedBucket() *hookedBucket {
	b := &hookedBucket{Store: f.node.objects}
	f.node.objects = b
	return b
}

// deleteJobNow cancels the job, deletes its files and runs their removal
// at once, as a client and the cleanup queue would while a chunk of it
// still runs: River's cancel has not reached the chunk yet (about a
// second on SQLite, a notification on PostgreSQL).
func (f *fixture) deleteJobNow(jobID string) {
	f.T.Helper()
	if _, err := f.api.Cancel(f.Ctx, f.P, jobID); err != nil {
		f.T.Error(err)
	}
	if _, err := f.api.DeleteJob(f.Ctx, f.P, jobID); err != nil {
		f.T.Error(err)
	}
	f.runRemovals()
}

// TestNoLogIsKeptForAJobWhoseFilesWereDeleted: a chunk's Blender fails
// after its job was canceled and its files deleted and removed, before
// River's cancel reached the chunk. Its log is not kept under the
// deleted job's prefix, where nothing would ever remove it, nor counted.
func TestNoLogIsKeptForAJobWhoseFilesWereDeleted(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		f.node.installs[0].Blender = &hookBlender{fakeBlender: f.blender, before: func() { f.deleteJobNow(job.ID) }}
		f.blender.willRender(fakeRender{err: &blender.RenderError{Frame: 1, Line: "Error: out of memory"}})

		_ = f.renderWork(context.Background(), ref, 1, enginetest.RenderAttempts)

		if keys := f.storedKeys(farm.JobPrefix(job.ID)); len(keys) != 0 {
			t.Errorf("the deleted job's prefix holds %q", keys)
		}
		if n := f.loggedBytes(job.ID); n != 0 {
			t.Errorf("%d bytes of logs counted, want none", n)
		}
	})
}

// TestALogStoredAsItsJobIsDeletedIsRemoved: the job is canceled, its
// files deleted and removed while the chunk's log is being stored, after
// the node saw the job still there. The node sees it deleted once the
// log is stored, and removes the log.
func TestALogStoredAsItsJobIsDeletedIsRemoved(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		bucket := f.onHookedBucket()
		var once sync.Once
		bucket.beforePut = func(key string) {
			if strings.HasPrefix(key, farm.JobLogsPrefix(job.ID)) {
				once.Do(func() { f.deleteJobNow(job.ID) })
			}
		}
		f.blender.willRender(fakeRender{err: &blender.RenderError{Frame: 1, Line: "Error: out of memory"}})

		_ = f.renderWork(context.Background(), ref, 1, enginetest.RenderAttempts)

		if n := bucket.putsUnder(farm.JobLogsPrefix(job.ID)); n != 1 {
			t.Fatalf("%d logs stored, want the one the test deletes the job during", n)
		}
		if keys := f.storedKeys(farm.JobPrefix(job.ID)); len(keys) != 0 {
			t.Errorf("the deleted job's prefix holds %q", keys)
		}
		if n := f.loggedBytes(job.ID); n != 0 {
			t.Errorf("%d bytes of logs counted, want none", n)
		}
	})
}
