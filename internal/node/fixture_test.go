package node

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/housekeeping"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/service"
	"github.com/renderfarm/renderfarm/internal/store"
)

// The tests of this package drive the node's functions directly, on a
// farm of enginetest's, as a render node would carry out River's jobs;
// jobs are made through the API's service, and the housekeeping's reaper
// hands out the tasks of workers given up on. Blender is the fake of
// fake_test.go unless a test runs the real one.

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// fixture is a farm with this node on it.
type fixture struct {
	*enginetest.Farm
	api  *service.Service
	node *Node
	hk   *housekeeping.Housekeeping
	// blender is the node's Blender, the first of blenders: the fakes of
	// the node's Blenders by version.
	blender  *fakeBlender
	blenders map[string]*fakeBlender
	metrics  *metrics.Metrics
}

var discardLog = slog.New(slog.DiscardHandler)

// newFixture is a farm whose node runs one Blender, of
// fakeBlenderVersion.
func newFixture(t *testing.T, db enginetest.Database) *fixture {
	t.Helper()
	return newFixtureWith(t, db, nil)
}

// newFixtureOf is a farm whose node runs a fake Blender of each version.
func newFixtureOf(t *testing.T, db enginetest.Database, versions ...string) *fixture {
	t.Helper()
	return newFixtureWith(t, db, nil, versions...)
}

// newFixtureWith is newFixtureOf (fakeBlenderVersion alone when no
// version is given) with the node's configuration changed by configure,
// and the node and housekeeping counting in metrics of their own
// (f.metrics).
func newFixtureWith(t *testing.T, db enginetest.Database, configure func(*Config), versions ...string) *fixture {
	t.Helper()
	if len(versions) == 0 {
		versions = []string{fakeBlenderVersion}
	}
	f := &fixture{Farm: enginetest.New(t, db), blenders: map[string]*fakeBlender{}}
	var installs []Install
	for _, v := range versions {
		f.blenders[v] = newFakeBlender(t)
		installs = append(installs, Install{Version: v, Blender: f.blenders[v]})
	}
	f.blender = f.blenders[versions[0]]
	svc := service.DefaultConfig()
	svc.WorkerTimeout, svc.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	// Renders are spread over the farm's live workers, as on an API server.
	svc.LocalRenderSlots = 0
	f.api = service.New(f.Engine, svc)
	f.metrics = metrics.New(func(context.Context) (store.FarmStats, error) { return store.FarmStats{}, nil }, discardLog)
	cfg := DefaultConfig()
	cfg.WorkerName, cfg.WorkDir = "node-test", filepath.Join(f.Dir, "work")
	cfg.Metrics = f.metrics
	if configure != nil {
		configure(&cfg)
	}
	var err error
	if f.node, err = New(f.Engine, installs, cfg); err != nil {
		t.Fatalf("node.New: %v", err)
	}
	hk := housekeeping.DefaultConfig()
	hk.WorkerTimeout, hk.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	hk.Metrics = f.metrics
	f.hk = housekeeping.New(f.Engine, hk)
	return f
}

// claim makes this node hold a task for ref's generation, as its render
// worker does first.
func (f *fixture) claim(ref engine.TaskRef) {
	f.T.Helper()
	ok, err := f.node.claim(f.Ctx, ref)
	if !ok || err != nil {
		f.T.Fatalf("claim(%+v) = %v, %v; want the task", ref, ok, err)
	}
}

// startChunk runs the start of a chunk: the job moves to rendering.
func (f *fixture) startChunk(ref engine.TaskRef) []int {
	f.T.Helper()
	job, todo, err := f.node.startChunk(f.Ctx, ref)
	if err != nil || job == nil {
		f.T.Fatalf("startChunk(%+v) = %v, %v; want the job", ref, job, err)
	}
	return todo
}

// startedChunk is the ref of a chunk's task this node claimed and
// started: its job is rendering.
func (f *fixture) startedChunk(task store.Task) engine.TaskRef {
	f.T.Helper()
	ref := f.Ref(task)
	f.claim(ref)
	f.startChunk(ref)
	return ref
}

// saveFrame plays a frame Blender has written and the runner has checked:
// a small image is handed to storeFrame, which stores and records it.
func (f *fixture) saveFrame(ref engine.TaskRef, frame int, seconds float64) error {
	f.T.Helper()
	return f.saveFrameImage(ref, frame, seconds, "\x89PNG frame")
}

// saveFrameImage is saveFrame with the image's bytes.
func (f *fixture) saveFrameImage(ref engine.TaskRef, frame int, seconds float64, image string) error {
	f.T.Helper()
	return f.node.storeFrame(f.Ctx, nil, ref, frame, imageOnly(enginetest.FrameName(frame), image), seconds, nil)
}

// imageOnly is the files of a frame that made its image alone, named name.
func imageOnly(name, body string) []frameFile {
	return []frameFile{{rel: name, body: func() io.Reader { return strings.NewReader(body) },
		output: farm.FrameOutput{Kind: farm.OutputFrame, FileName: name, RelativePath: name}}}
}

// renderChunk plays a chunk that rendered every one of its frames: claimed,
// started, each frame saved.
func (f *fixture) renderChunk(task store.Task) engine.TaskRef {
	f.T.Helper()
	ref := f.Ref(task)
	f.claim(ref)
	for _, n := range f.startChunk(ref) {
		if err := f.saveFrame(ref, n, 2); err != nil {
			f.T.Fatalf("frame %d saved: %v", n, err)
		}
	}
	return ref
}

// eachFixture runs test on a fresh fixture of each database the farm runs
// on (see enginetest.EachDatabase).
func eachFixture(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Helper()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) { test(t, newFixture(t, db)) })
}
