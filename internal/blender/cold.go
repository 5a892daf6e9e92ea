package blender

import (
	"context"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Cold runs a Blender of its own for every inspection and every chunk and
// keeps none running between them (--blender-keep-alive 0). It answers as
// Sessions does, so a worker uses either the same way.
type Cold struct {
	Runner *Runner
}

// Inspect inspects blendPath in a Blender that ends with it; outputRoot,
// where a kept session would render, is not needed.
func (c Cold) Inspect(ctx context.Context, blendPath, _ string) (*farm.Inspection, error) {
	return c.Runner.Inspect(ctx, blendPath)
}

// Render renders job in a Blender that ends with it (see Runner.Render).
func (c Cold) Render(ctx context.Context, job RenderJob, _ string, onEvent func(Event)) (*RenderResult, error) {
	return c.Runner.Render(ctx, job, onEvent)
}

// Merge makes a split frame of its parts in a Blender that ends with it
// (see Runner.Merge).
func (c Cold) Merge(ctx context.Context, job MergeJob, onEvent func(Event)) (*RenderResult, error) {
	return c.Runner.Merge(ctx, job, onEvent)
}

// Version answers the version of the Blender the runner starts.
func (c Cold) Version(ctx context.Context) (string, error) { return c.Runner.Version(ctx) }

// Forget has nothing to end: no Blender outlives its inspection or chunk.
func (Cold) Forget(string) {}

// Close has nothing to end.
func (Cold) Close() {}
