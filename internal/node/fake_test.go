package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// fakeBlender plays Blender for the tests of the node's own decisions.
// Each Inspect and Render takes the next answer a test scripted; a Render
// writes the frames its answer names into the chunk's output directory and
// reports each as the runner does (started, then saved with its image),
// then returns its answer's error. A call nobody scripted fails the test.
type fakeBlender struct {
	t        *testing.T
	mu       sync.Mutex
	inspects []fakeInspect
	renders  []fakeRender
	// rendered are the chunks Render was asked for, in order.
	rendered []blender.RenderJob
	// merged are the merges Merge was asked for, in order.
	merged []blender.MergeJob
	// mergeErr, when set, is what every Merge answers, writing nothing.
	mergeErr error
}

// fakeInspect is one Inspect's answer.
type fakeInspect struct {
	inspection *farm.Inspection
	err        error
}

// fakeRender is what one Render does.
type fakeRender struct {
	// saves are the frames written and reported saved, in order.
	saves []int
	// err is what Render answers once they are.
	err error
	// hang makes Render wait, after its saves, until its context ends, as
	// a Blender does that is killed by a cancel or a stopping worker.
	hang bool
	// panics makes Render panic with it, after its saves: a fault of the
	// farm's own code on the way.
	panics string
	// begin, when not 0, is a frame reported started after the saves and
	// never saved: the frame Blender is on when it is stopped.
	begin int
	// empty are frames of saves whose file is written empty, as a Blender
	// that says it saved a frame but wrote nothing leaves it.
	empty []int
}

func newFakeBlender(t *testing.T) *fakeBlender { return &fakeBlender{t: t} }

// willInspect scripts the next Inspect.
func (b *fakeBlender) willInspect(answer fakeInspect) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inspects = append(b.inspects, answer)
}

// willRender scripts the next Render.
func (b *fakeBlender) willRender(script fakeRender) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.renders = append(b.renders, script)
}

func (b *fakeBlender) Inspect(ctx context.Context, blendPath, outputRoot string) (*farm.Inspection, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.inspects) == 0 {
		b.t.Errorf("Blender was asked to inspect %s, which no test scripted", blendPath)
		return nil, errors.New("unscripted inspection")
	}
	answer := b.inspects[0]
	b.inspects = b.inspects[1:]
	return answer.inspection, answer.err
}

func (b *fakeBlender) Render(ctx context.Context, job blender.RenderJob, outputRoot string, onEvent func(blender.Event)) (*blender.RenderResult, error) {
	b.mu.Lock()
	b.rendered = append(b.rendered, job)
	if len(b.renders) == 0 {
		b.mu.Unlock()
		b.t.Errorf("Blender was asked to render frames %v, which no test scripted", job.Frames)
		return nil, errors.New("unscripted render")
	}
	script := b.renders[0]
	b.renders = b.renders[1:]
	b.mu.Unlock()

	result := &blender.RenderResult{LogTail: []string{"Fra:1 the fake Blender's last line, in " + job.OutputDir}}
	for _, frame := range script.saves {
		onEvent(blender.Event{Kind: blender.FrameStarted, Frame: frame})
		if err := saveFakeFrame(job.OutputDir, frame, slices.Contains(script.empty, frame), onEvent); err != nil {
			return result, err
		}
		result.FramesSaved = append(result.FramesSaved, frame)
	}
	if script.begin != 0 {
		onEvent(blender.Event{Kind: blender.FrameStarted, Frame: script.begin})
	}
	if script.panics != "" {
		panic(script.panics)
	}
	if script.hang {
		<-ctx.Done()
		return result, ctx.Err()
	}
	return result, script.err
}

// saveFakeFrame writes a frame's file where the node told Blender to and
// reports it saved, with the file open as the runner hands it over.
func saveFakeFrame(dir string, frame int, empty bool, onEvent func(blender.Event)) error {
	path := filepath.Join(dir, fmt.Sprintf("frame_%04d.png", frame))
	body := []byte(fmt.Sprintf("\x89PNG frame %d", frame))
	if empty {
		body = nil
	}
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	image, err := blender.NewFrameImage(f)
	if err != nil {
		return err
	}
	onEvent(blender.Event{Kind: blender.FrameSaved, Frame: frame, Path: path, RenderSeconds: 1.5, Image: image})
	return nil
}

// fakeBlenderVersion is the version the node is told its fake Blender
// is: that of the Blender which validated enginetest's jobs, whose files
// say 4.2.
const fakeBlenderVersion = "4.2.3"

func (b *fakeBlender) Forget(string) {}

func (b *fakeBlender) Close() {}

// attemptOf is River's job of a task, on its attempt-th try of max.
func attemptOf[T river.JobArgs](args T, attempt, max int) *river.Job[T] {
	return &river.Job[T]{JobRow: &rivertype.JobRow{Attempt: attempt, MaxAttempts: max}, Args: args}
}

// renderArgs is the River job's arguments for a chunk's task as queued.
func (f *fixture) renderArgs(ref engine.TaskRef) engine.RenderArgs {
	f.T.Helper()
	var frames []int
	for _, fr := range f.Frames(ref.JobID) {
		if fr.TaskID == ref.TaskID {
			frames = append(frames, fr.Frame)
		}
	}
	slices.Sort(frames)
	return engine.RenderArgs{TaskRef: ref, Frames: frames}
}

// waitFor waits until cond holds, checking it every few milliseconds, and
// fails the test if it does not within 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the condition did not hold within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Merge plays a merge: it checks that every part is where the node put
// it, writes the frame of their bytes and reports it saved.
func (b *fakeBlender) Merge(ctx context.Context, job blender.MergeJob, onEvent func(blender.Event)) (*blender.RenderResult, error) {
	b.mu.Lock()
	b.merged = append(b.merged, job)
	mergeErr := b.mergeErr
	b.mu.Unlock()
	if mergeErr != nil {
		return &blender.RenderResult{}, mergeErr
	}
	for i := range job.Parts {
		if _, err := os.Stat(filepath.Join(job.PartsDir(), blender.PartFileName(i))); err != nil {
			return nil, fmt.Errorf("part %d missing: %w", i, err)
		}
	}
	return &blender.RenderResult{}, saveFakeFrame(job.OutputDir(), job.Frame, false, onEvent)
}
