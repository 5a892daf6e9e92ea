package blender_test

import (
	"slices"
	"testing"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// The frame size limit is a frame at the farm's largest resolution, four
// 32-bit float channels, uncompressed, and 16 MiB for headers.
func TestMaxFrameBytesIsTheFarmsLargestFrame(t *testing.T) {
	if blender.MaxFrameSide != farm.MaxResolution {
		t.Errorf("the largest frame side is %d, farm.MaxResolution %d", blender.MaxFrameSide, farm.MaxResolution)
	}
	if want := farm.MaxResolution*farm.MaxResolution*4*4 + 16<<20; blender.MaxFrameBytes != want {
		t.Errorf("maxFrameBytes = %d, want %d", blender.MaxFrameBytes, want)
	}
}

// The farm checks the file of each output format it accepts, and no more.
func TestStillFormatsAreTheFarmsFormats(t *testing.T) {
	want := slices.Sorted(slices.Values(farm.OutputFormats))
	if !slices.Equal(blender.StillFormats, want) {
		t.Errorf("formats checked %q, the farm accepts %q", blender.StillFormats, want)
	}
}
