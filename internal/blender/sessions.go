package blender

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Sessions keeps Blender warm between the chunks of a job: a session that
// rendered a chunk, or inspected the file at validation, waits up to
// KeepAlive with the file loaded for the job's next chunk on this worker,
// which then renders without a Blender start. A render that finds no
// session to take, or whose session breaks before a frame was begun, runs
// in a fresh one. A Sessions is safe for concurrent use.
type Sessions struct {
	Runner *Runner
	// KeepAlive is how long an idle session waits for its next chunk
	// before its Blender is ended; it must be above 0.
	KeepAlive time.Duration
	// Max bounds the Blender processes the pool keeps, busy and idle
	// together: starting one more ends the longest idle first. A busy
	// session is never ended for another, so Max may be passed while every
	// session is busy.
	Max int

	mu     sync.Mutex
	idle   []*idleSession // the longest idle first
	live   int            // sessions started and not yet closed
	closed bool
}

type idleSession struct {
	s     *Session
	timer *time.Timer
}

// Inspect inspects blendPath in a new session and keeps it for renders of
// the file. outputRoot is where those renders will write (see SessionSpec).
func (p *Sessions) Inspect(ctx context.Context, blendPath, outputRoot string) (*farm.Inspection, error) {
	s, err := p.start(SessionSpec{BlendPath: blendPath, OutputRoot: outputRoot})
	if err != nil {
		return nil, err
	}
	ins, err := s.Inspect(ctx)
	if err != nil {
		p.close(s)
		return nil, err
	}
	p.park(s)
	return ins, nil
}

// Render renders job in an idle session of the same file, scene and
// settings when there is one, else in an idle session of the same file and
// scene reloaded (another part of a split frame, whose settings differ in
// the part), else in a new session, and keeps the session for the next
// chunk if the render succeeded. outputRoot must hold job.OutputDir; the
// job's chunks should all use the same, as a session may write only there.
func (p *Sessions) Render(ctx context.Context, job RenderJob, outputRoot string, onEvent func(Event)) (*RenderResult, error) {
	if err := checkJob(&job); err != nil {
		return nil, err
	}
	outputRoot, err := filepath.Abs(outputRoot)
	if err != nil {
		return nil, err
	}
	settings, err := jsonString(job.Settings)
	if err != nil {
		return nil, err
	}
	if s := p.take(job, settings, func(root string) bool { return root == outputRoot }); s != nil {
		res, began, err := inIdle(ctx, s, job, settings, onEvent, func(on func(Event)) (*RenderResult, error) {
			return s.Render(ctx, job, on)
		})
		if err == nil {
			p.park(s)
			return res, nil
		}
		p.close(s)
		if began || ctx.Err() != nil {
			return res, err
		}
		// The session broke before a frame began (its Blender died while
		// idle, say): the chunk has lost nothing, and a fresh session tells
		// a broken session from a bad chunk.
	}
	s, err := p.start(SessionSpec{BlendPath: job.BlendPath, Scene: job.Scene, OutputRoot: outputRoot})
	if err != nil {
		return nil, err
	}
	res, err := s.Render(ctx, job, onEvent)
	if err != nil {
		p.close(s)
		return res, err
	}
	p.park(s)
	return res, nil
}

// Merge makes a split frame of its parts (see Session.Merge) in an idle
// session of the file whose output directory holds job.Dir, reloaded (the
// session that rendered one of the parts, most often: the merge then costs
// no Blender start), else in a Blender of its own (Runner.Merge). A session
// that merged composites an image from then on, so none is kept for the
// job's chunks.
func (p *Sessions) Merge(ctx context.Context, job MergeJob, onEvent func(Event)) (*RenderResult, error) {
	if err := job.check(); err != nil {
		return nil, err
	}
	render := job.renderJob()
	if err := checkJob(&render); err != nil {
		return nil, err
	}
	holds := func(root string) bool {
		rel, err := filepath.Rel(root, job.Dir)
		return err == nil && (rel == "." || filepath.IsLocal(rel))
	}
	settings, err := jsonString(render.Settings)
	if err != nil {
		return nil, err
	}
	if s := p.take(render, settings, holds); s != nil {
		res, began, err := inIdle(ctx, s, render, settings, onEvent, func(on func(Event)) (*RenderResult, error) {
			return s.Merge(ctx, job, on)
		})
		p.close(s)
		if err == nil || began || ctx.Err() != nil {
			return res, err
		}
		// As in Render: a session that broke before the merge began leaves
		// the merge to a fresh Blender.
	}
	return p.Runner.Merge(ctx, job, onEvent)
}

// inIdle runs do in s, an idle session taken for job, loading the file
// again first when s has applied other settings than job's (settings, in
// JSON). began says whether a frame began: a session that broke before
// one did leaves the work to a fresh Blender, having lost nothing.
func inIdle(ctx context.Context, s *Session, job RenderJob, settings string, onEvent func(Event),
	do func(onEvent func(Event)) (*RenderResult, error)) (res *RenderResult, began bool, err error) {
	if !s.renders(job, settings) {
		if err := s.Reload(ctx); err != nil {
			return nil, false, err
		}
	}
	res, err = do(func(ev Event) {
		if ev.Kind == FrameStarted {
			began = true
		}
		if onEvent != nil {
			onEvent(ev)
		}
	})
	return res, began, err
}

// Forget ends the idle sessions whose output directory lies under dir,
// such as a job's directory when the job has ended. (The output directory
// rather than the file: a file may be read where it lies, elsewhere.)
func (p *Sessions) Forget(dir string) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	var ended []*Session
	p.mu.Lock()
	kept := p.idle[:0]
	for _, is := range p.idle {
		if rel, err := filepath.Rel(dir, is.s.spec.OutputRoot); err == nil && (rel == "." || filepath.IsLocal(rel)) {
			is.timer.Stop()
			ended = append(ended, is.s)
			continue
		}
		kept = append(kept, is)
	}
	p.idle = kept
	p.mu.Unlock()
	for _, s := range ended {
		p.close(s)
	}
}

// Close ends every idle session; sessions busy now end when their render
// does.
func (p *Sessions) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, is := range idle {
		is.timer.Stop()
		p.close(is.s)
	}
}

// Version answers the version of the Blender the sessions run.
func (p *Sessions) Version(ctx context.Context) (string, error) { return p.Runner.Version(ctx) }

// Live answers how many sessions run, busy and idle.
func (p *Sessions) Live() (live, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live, len(p.idle)
}

// start starts a session, first ending the longest idle one if the pool is
// full.
func (p *Sessions) start(spec SessionSpec) (*Session, error) {
	var evicted *Session
	p.mu.Lock()
	if p.live >= max(p.Max, 1) && len(p.idle) > 0 {
		evicted = p.idle[0].s
		p.idle[0].timer.Stop()
		p.idle = p.idle[1:]
	}
	p.mu.Unlock()
	if evicted != nil {
		p.close(evicted)
	}
	s, err := p.Runner.StartSession(spec)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	return s, nil
}

// take removes from the idle list and answers a session of job's file and
// scene whose output directory fits: one that renders with settings (the
// JSON of job.Settings) as it is, else one that must reload first, else
// nil.
func (p *Sessions) take(job RenderJob, settings string, fits func(outputRoot string) bool) *Session {
	var dead []*Session
	defer func() {
		for _, s := range dead {
			p.close(s)
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	chosen := -1
	for i := 0; i < len(p.idle); i++ {
		is := p.idle[i]
		if !fits(is.s.spec.OutputRoot) {
			continue
		}
		if !is.s.Alive() {
			// Its Blender died while idle: the next chunk gets a new one.
			is.timer.Stop()
			dead = append(dead, is.s)
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			i--
			continue
		}
		if is.s.renders(job, settings) {
			chosen = i
			break
		}
		if chosen < 0 && is.s.reloads(job) {
			chosen = i
		}
	}
	if chosen < 0 {
		return nil
	}
	s := p.idle[chosen].s
	p.idle[chosen].timer.Stop()
	p.idle = append(p.idle[:chosen], p.idle[chosen+1:]...)
	return s
}

// park keeps s idle for KeepAlive, or ends it if it cannot serve again.
func (p *Sessions) park(s *Session) {
	if !s.Alive() {
		p.close(s)
		return
	}
	p.mu.Lock()
	if p.closed || p.KeepAlive <= 0 {
		p.mu.Unlock()
		p.close(s)
		return
	}
	is := &idleSession{s: s}
	is.timer = time.AfterFunc(p.KeepAlive, func() { p.expire(is) })
	p.idle = append(p.idle, is)
	p.mu.Unlock()
}

// expire ends is if it is still idle.
func (p *Sessions) expire(is *idleSession) {
	p.mu.Lock()
	found := false
	for i, x := range p.idle {
		if x == is {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			found = true
			break
		}
	}
	p.mu.Unlock()
	if found {
		p.close(is.s)
	}
}

func (p *Sessions) close(s *Session) {
	s.Close()
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
}
