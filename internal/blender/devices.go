package blender

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// maxDevicesAnswer bounds what devices.py writes: a few types and counts.
const maxDevicesAnswer = 4 << 10

// GPUDevices asks this Blender's Cycles which GPUs it sees, by type (its
// compute device types, farm.GPUTypes), for a render node started with
// --gpu auto: it runs our devices.py in a Blender of its own, with no
// .blend loaded. A machine without GPUs answers none.
func (r *Runner) GPUDevices(ctx context.Context) ([]farm.GPU, error) {
	body, err := scripts.ReadFile("scripts/devices.py")
	if err != nil {
		return nil, fmt.Errorf("blender: embedded script devices.py: %w", err)
	}
	// Absolute, so that no path on Blender's command line starts with "-".
	parent, err := filepath.Abs(cmp.Or(r.TempDir, os.TempDir()))
	if err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	out, err := os.MkdirTemp(parent, "renderfarm-devices-")
	if err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	defer os.RemoveAll(out)
	const answerName = "devices.json"
	err = r.RunScript(ctx, Script{Name: "devices.py", Body: body,
		Input: map[string]any{"types": farm.GPUTypes, "output": filepath.Join(out, answerName)},
		Paths: sandbox.Paths{Writable: []string{out}}})
	if err != nil {
		return nil, fmt.Errorf("blender: ask Cycles for its GPUs: %w", err)
	}
	dir, err := openDir(out)
	if err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	defer dir.Close()
	raw, err := readAnswer(dir, answerName, maxDevicesAnswer)
	if err != nil {
		return nil, fmt.Errorf("blender: ask Cycles for its GPUs: %w", err)
	}
	var counts map[string]int
	if err := json.Unmarshal(raw, &counts); err != nil {
		return nil, fmt.Errorf("blender: ask Cycles for its GPUs: its answer is not a JSON object of counts: %w", err)
	}
	var gpus []farm.GPU
	for _, typ := range farm.GPUTypes {
		n := counts[typ]
		if n < 0 || n > farm.MaxGPUCount {
			return nil, fmt.Errorf("blender: ask Cycles for its GPUs: %d %s devices is beyond the farm's %d", n, typ, farm.MaxGPUCount)
		}
		if n > 0 {
			gpus = append(gpus, farm.GPU{Type: typ, Count: n})
		}
	}
	for typ := range counts {
		if !slices.Contains(farm.GPUTypes, typ) {
			return nil, fmt.Errorf("blender: ask Cycles for its GPUs: %q is not a GPU type of the farm's", typ)
		}
	}
	return gpus, nil
}
