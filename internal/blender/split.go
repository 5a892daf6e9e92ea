package blender

import (
	"fmt"
	"slices"
)

// A still frame can be split into parts that different workers render, and
// merged again by a finalizing step (Runner.Merge) into an image no one can
// tell from a render of the whole frame. See docs/split-frame.md.

// SplitMode says how a frame is split.
type SplitMode string

const (
	// SplitSamples renders the whole image in every part, each with its
	// share of the samples and its own sample offset (a range of Cycles'
	// sample sequence no other part uses); the merge weighs them by their
	// samples per pixel, as Cycles' merge_images does.
	SplitSamples SplitMode = "samples"
	// SplitTiles renders a region of the image in each part (a near-square
	// grid, see tile_grid in scripts/split.py), with an overscan margin; the
	// merge assembles the regions without the margin.
	SplitTiles SplitMode = "tiles"
)

// The number of parts a frame may be split into.
const (
	MinSplitParts = 2
	MaxSplitParts = 64
)

// DefaultTileOverscan is the margin, in pixels, a tile renders beyond its
// region on every side where the frame goes on. Cycles importance-samples
// its pixel filter, so a pixel's value depends on its own samples only, and
// its random numbers on its place in the whole frame, not in the tile: a
// tile's pixels are the whole render's without any margin, except where
// adaptive sampling decides. Adaptive sampling marks a pixel's neighbours
// (one pixel each way) unconverged when it is, so a pixel at a tile's edge
// needs its neighbour across the edge rendered: one pixel; the second is
// headroom, for a few per cent more pixels rendered (4 parts of 640x360:
// 2.4 %).
const DefaultTileOverscan = 2

// maxTileOverscan bounds the overscan a part may ask for.
const maxTileOverscan = 64

// Part is the part of a frame one render makes. A RenderJob whose Settings
// carry a Part renders only that part of its (single) frame, to
// frame_NNNN.exr (frame_0001.exr for frame 1) in its output directory: a multilayer float OpenEXR with
// the samples per pixel (samples mode), or a float OpenEXR of the tile and
// its overscan (tiles mode). Denoising is off in every part; the merge
// denoises once, where the Blender has a denoiser.
type Part struct {
	Mode SplitMode `json:"mode"`
	// Index is the part's number, from 0 to Count-1. In samples mode part
	// i renders its share of the samples from the offset where part i-1's
	// ended; in tiles mode the i-th tile of the grid, from the bottom left.
	Index int `json:"index"`
	Count int `json:"count"`
	// Overscan is the tiles' margin in pixels; 0 means
	// DefaultTileOverscan. Samples mode ignores it.
	Overscan int `json:"overscan,omitempty"`
}

// PartFileName is the name the merge reads part index from, in the parts
// directory the farm made and filled: the merge finds a part by this name
// only, never by what a Blender printed or wrote beside it.
func PartFileName(index int) string { return fmt.Sprintf("part_%03d.exr", index) }

// check refuses a part the scripts could not render.
func (p Part) check() error {
	if p.Mode != SplitSamples && p.Mode != SplitTiles {
		return fmt.Errorf("blender: split mode %q is not one of %q, %q", p.Mode, SplitSamples, SplitTiles)
	}
	if p.Count < MinSplitParts || p.Count > MaxSplitParts {
		return fmt.Errorf("blender: a frame is split into %d to %d parts, not %d", MinSplitParts, MaxSplitParts, p.Count)
	}
	if p.Index < 0 || p.Index >= p.Count {
		return fmt.Errorf("blender: part %d does not exist in a split into %d parts (0 to %d)", p.Index, p.Count, p.Count-1)
	}
	if p.Overscan < 0 || p.Overscan > maxTileOverscan {
		return fmt.Errorf("blender: a tile's overscan is 0 to %d pixels, not %d", maxTileOverscan, p.Overscan)
	}
	return nil
}

// withDefaults fills in the overscan the scripts use.
func (p Part) withDefaults() Part {
	if p.Mode == SplitTiles && p.Overscan == 0 {
		p.Overscan = DefaultTileOverscan
	}
	if p.Mode == SplitSamples {
		p.Overscan = 0
	}
	return p
}

// partSettings are s as a part renders them: the part's file is lossless
// float OpenEXR whatever the frame's format, since the merge, not the part,
// writes the frame in it.
func partSettings(s Settings) Settings {
	part := s.Part.withDefaults()
	s.Part = &part
	s.OutputFormat = "OPEN_EXR"
	if part.Mode == SplitSamples {
		s.OutputFormat = "OPEN_EXR_MULTILAYER"
	}
	s.ColorMode, s.ColorDepth, s.ExrCodec = "RGBA", "32", "ZIP"
	s.TiffCodec, s.Compression, s.Quality = "", 0, 0
	return s
}

// SplitRequest is what a render request asks of a split, with what it
// resolves to for the scene, for CheckSplit.
type SplitRequest struct {
	Mode  SplitMode
	Parts int
	// Engine, OutputFormat and Samples are the render's, as resolved over
	// the scene's own (Blender's identifiers; Samples the total for the
	// frame). Denoising is whether the render denoises.
	Engine       string
	OutputFormat string
	Samples      int
	Denoising    bool
}

// SplitError is a split the farm refuses: Field names the request's field
// at fault and Message says what to change.
type SplitError struct {
	Field   string
	Message string
}

func (e *SplitError) Error() string { return e.Field + ": " + e.Message }

// tileEngines are the engines whose tiles make the whole render: Cycles
// (each pixel's samples are its own, see DefaultTileOverscan), EEVEE as
// Blender 4.1 and older have it and Workbench, which render the whole
// frame for a tile and keep the tile's pixels, so the tiles are the whole
// render's pixel for pixel, but each costs what the whole frame does (see
// docs/split-frame.md). EEVEE Next (BLENDER_EEVEE_NEXT in Blender 4.2 to
// 4.4, BLENDER_EEVEE from 4.5) renders only the region, with its own noise
// and screen-space effects, and is refused: scripts/split.py refuses
// BLENDER_EEVEE on a Blender of 4.2 or later.
var tileEngines = []string{"CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"}

// movieFormats are Blender's identifiers of formats that write a movie.
var movieFormats = []string{"FFMPEG", "AVI_JPEG", "AVI_RAW", "FRAMESERVER", "H264", "XVID", "THEORA", "QUICKTIME"}

// CheckSplit refuses a split the farm cannot render into an image
// indistinguishable from a whole render, saying what to change. The farm
// calls it when it resolves a render request; it is pure, so the API can
// answer before any Blender runs.
func CheckSplit(r SplitRequest) error {
	if r.Mode != SplitSamples && r.Mode != SplitTiles {
		return &SplitError{"splitFrame.mode", fmt.Sprintf("%q is not a split mode: use %q (each part renders the whole image with a share of the samples) or %q (each part renders a region)", r.Mode, SplitSamples, SplitTiles)}
	}
	if r.Parts < MinSplitParts || r.Parts > MaxSplitParts {
		return &SplitError{"splitFrame.parts", fmt.Sprintf("%d parts: a frame is split into %d to %d parts", r.Parts, MinSplitParts, MaxSplitParts)}
	}
	if r.Mode == SplitSamples && r.Engine != "CYCLES" {
		what := "samples mode merges what Cycles writes of its samples, which no other engine writes"
		if slices.Contains(tileEngines, r.Engine) {
			what += fmt.Sprintf(": set engine to CYCLES, or splitFrame.mode to %q, or remove splitFrame", SplitTiles)
		} else {
			what += ": set engine to CYCLES or remove splitFrame"
		}
		return &SplitError{"engine", fmt.Sprintf("the render uses %q; %s", r.Engine, what)}
	}
	if r.Mode == SplitTiles && !slices.Contains(tileEngines, r.Engine) {
		why := "tiles are rendered with Cycles, EEVEE (Blender 4.1 and older) or Workbench"
		if r.Engine == "BLENDER_EEVEE_NEXT" {
			why = "EEVEE Next renders a tile's pixels differently from the whole frame's (its noise and screen-space effects follow the region rendered), so the tiles would not make the whole render"
		}
		return &SplitError{"engine", fmt.Sprintf("the render uses %q; %s: set engine to CYCLES or remove splitFrame", r.Engine, why)}
	}
	if slices.Contains(movieFormats, r.OutputFormat) {
		return &SplitError{"outputFormat", fmt.Sprintf("%q is a movie format, and a split frame is a still image: set outputFormat to an image format (for example PNG) or remove splitFrame", r.OutputFormat)}
	}
	if r.Mode == SplitSamples && r.Samples < r.Parts {
		return &SplitError{"splitFrame.parts", fmt.Sprintf("%d samples cannot be shared by %d parts: use at most %d parts, or more samples", r.Samples, r.Parts, max(r.Samples, 1))}
	}
	if r.Mode == SplitTiles && r.Denoising {
		return &SplitError{"splitFrame.mode", "tiles mode cannot denoise: a denoiser sees past a tile's edge and would leave seams; use samples mode (it denoises the merged frame once) or turn denoising off"}
	}
	return nil
}
