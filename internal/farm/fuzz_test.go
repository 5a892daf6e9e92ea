package farm_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The fuzz targets below run their seed corpora (testdata/fuzz/…) with
// every `go test`; `go test -fuzz` explores beyond them. See
// docs/security.md for the commands and the executions run so far.

func FuzzParseFrameRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := farm.ParseFrameRange(s)
		if err != nil {
			if r != (farm.FrameRange{}) {
				t.Fatalf("ParseFrameRange(%q) = %+v with error %v", s, r, err)
			}
			if err.Error() == "" {
				t.Fatalf("ParseFrameRange(%q): an error without a message", s)
			}
			return
		}
		if r.Start < 0 || r.End < r.Start || r.End > farm.MaxFrame || r.Step < 1 || r.Step > farm.MaxFrame {
			t.Fatalf("ParseFrameRange(%q) = %+v, outside 0 ≤ start ≤ end ≤ %d, 1 ≤ step ≤ %d", s, r, farm.MaxFrame, farm.MaxFrame)
		}
		// What String writes names the same frames (a one-frame range with
		// a step is written without it).
		again, err := farm.ParseFrameRange(r.String())
		if err != nil {
			t.Fatalf("ParseFrameRange(%q) = %+v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		if again.Start != r.Start || again.End != r.End || (again.Step != r.Step && r.Start != r.End) {
			t.Fatalf("ParseFrameRange(%q) = %+v, but its String %q reads back as %+v", s, r, r.String(), again)
		}
	})
}

// FuzzExpandFrames takes frame ranges separated by commas and a scene's
// frames first to last.
func FuzzExpandFrames(f *testing.F) {
	f.Fuzz(func(t *testing.T, list string, first, last int) {
		ranges := strings.Split(list, ",")
		frames, err := farm.ExpandFrames(ranges, first, last)
		if err != nil {
			if frames != nil {
				t.Fatalf("ExpandFrames(%q, %d, %d) = %d frames with error %v", ranges, first, last, len(frames), err)
			}
			return
		}
		checkFrames(t, frames, first, last)

		// Every frame is named by a range, and every frame a range names
		// is there.
		have := make(map[int]bool, len(frames))
		for _, n := range frames {
			have[n] = true
		}
		named := make(map[int]bool, len(frames))
		for _, s := range ranges {
			r, err := farm.ParseFrameRange(s)
			if err != nil {
				t.Fatalf("ExpandFrames accepted %q, which ParseFrameRange refuses: %v", s, err)
			}
			for n := r.Start; n <= r.End; n += r.Step {
				if !have[n] {
					t.Fatalf("ExpandFrames(%q, %d, %d) left out frame %d of %q", ranges, first, last, n, s)
				}
				named[n] = true
			}
		}
		if len(named) != len(have) {
			t.Fatalf("ExpandFrames(%q, %d, %d) = %d frames, but the ranges name %d", ranges, first, last, len(frames), len(named))
		}

		// finalConfig records the frames compacted; they must expand back
		// to exactly the same frames.
		compact := farm.CompactRanges(frames)
		back, err := farm.ExpandFrames(compact, first, last)
		if err != nil || !slices.Equal(back, frames) {
			t.Fatalf("CompactRanges(frames of %q) = %q, which expands to %d frames (%v), not the %d it came from", ranges, compact, len(back), err, len(frames))
		}
	})
}

// checkFrames fails unless frames could be rendered from a scene of
// frames first to last: some, sorted, distinct, within the scene, and no
// more than a job may have.
func checkFrames(t *testing.T, frames []int, first, last int) {
	t.Helper()
	if len(frames) == 0 || len(frames) > farm.MaxFramesPerJob {
		t.Fatalf("%d frames, want 1 to %d", len(frames), farm.MaxFramesPerJob)
	}
	for i, n := range frames {
		if n < first || n > last || n < 0 || n > farm.MaxFrame {
			t.Fatalf("frame %d is outside the scene's %d-%d", n, first, last)
		}
		if i > 0 && n <= frames[i-1] {
			t.Fatalf("frames are not sorted and distinct: %d after %d", n, frames[i-1])
		}
	}
}

// FuzzResolveConfig decodes a render request as the API does and resolves
// it against a file of two scenes, on workers with GPUs or without.
func FuzzResolveConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, gpus bool) {
		var req farm.RenderConfig
		if json.Unmarshal(body, &req) != nil {
			return // the API refuses it before the farm sees it
		}
		caps := cpuFarm
		if gpus {
			caps = gpuFarm
		}
		a := twoScenes()
		fc, frames, err := farm.ResolveConfig(&req, a, caps)
		if err != nil {
			// Whatever a client sends is its own mistake, answered with a
			// code and a message, never an internal error.
			var fe *farm.Error
			if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid || fe.Code == "" || fe.Message == "" {
				t.Fatalf("ResolveConfig(%s) = %#v, want a 400 *farm.Error with a code and a message", body, err)
			}
			if fc != nil || frames != nil {
				t.Fatalf("ResolveConfig(%s) answered a configuration with its error %v", body, err)
			}
			return
		}
		scene, ok := a.Scene(fc.Scene)
		if !ok {
			t.Fatalf("ResolveConfig(%s) chose scene %q, which the file does not have", body, fc.Scene)
		}
		checkFrames(t, frames, scene.FrameStart, scene.FrameEnd)
		if fc.FrameCount != len(frames) {
			t.Fatalf("frameCount %d for %d frames", fc.FrameCount, len(frames))
		}
		if back, err := farm.ExpandFrames(fc.FrameRanges, scene.FrameStart, scene.FrameEnd); err != nil || !slices.Equal(back, frames) {
			t.Fatalf("finalConfig.frameRanges %q do not name the frames rendered (%v)", fc.FrameRanges, err)
		}
		if fc.ChunkSize < 1 || fc.ChunkSize > farm.MaxChunkSize {
			t.Fatalf("chunkSize %d", fc.ChunkSize)
		}
		if len(fc.Resolution) != 2 || fc.Resolution[0] < 1 || fc.Resolution[1] < 1 || fc.Resolution[0] > farm.MaxResolution || fc.Resolution[1] > farm.MaxResolution {
			t.Fatalf("resolution %v", fc.Resolution)
		}
		if fc.ResolutionPercentage < 1 || fc.ResolutionPercentage > 100 {
			t.Fatalf("resolutionPercentage %d", fc.ResolutionPercentage)
		}
		if !slices.Contains(farm.ColorPresets, fc.ColorManagementPreset) || !slices.Contains(farm.OutputFormats, fc.OutputFormat) {
			t.Fatalf("preset %q, output format %q", fc.ColorManagementPreset, fc.OutputFormat)
		}
		if !gpus && (fc.ComputeDeviceType != "CPU" || fc.CompositorDevice != "CPU") {
			t.Fatalf("devices %s and %s on workers without a GPU", fc.ComputeDeviceType, fc.CompositorDevice)
		}
		if fc.DenoisingEnabled && !a.DenoiserAvailable {
			t.Fatal("denoising on a Blender without a denoiser")
		}
	})
}
