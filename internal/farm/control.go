package farm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Job control: scout frames rendered before the rest, a retry of some
// frames of a job that ended, and the render nodes set aside for failing.

// ScoutAuto is scoutFrames' "auto": the first, middle and last frame of
// the job's frames.
const ScoutAuto = "auto"

// ScoutFrames is requestedRenderConfig.scoutFrames (ours): "auto", or a
// list of frame ranges of the job's frames, which render before the rest.
// The job is then suspended (SuspendedScoutFramesReady) until POST
// /resume renders the rest.
type ScoutFrames struct {
	Auto   bool
	Ranges []string
	// sent is what the request held instead of "auto" or a list of
	// strings, for ResolveScoutFrames to name in its refusal; a value that
	// is not the right type thus gets a message about this field rather
	// than a decoding error about the whole body.
	sent string
}

// UnmarshalJSON takes "auto" or an array of strings, and keeps anything
// else for ResolveScoutFrames to refuse.
func (s *ScoutFrames) UnmarshalJSON(b []byte) error {
	*s = ScoutFrames{}
	var text string
	if err := json.Unmarshal(b, &text); err == nil {
		if text == ScoutAuto {
			s.Auto = true
		} else {
			s.sent = fmt.Sprintf("%q", text)
		}
		return nil
	}
	var ranges []string
	if err := json.Unmarshal(b, &ranges); err == nil && ranges != nil {
		s.Ranges = ranges
		return nil
	}
	const maxShown = 40
	sent := string(bytes.TrimSpace(b))
	if len(sent) > maxShown {
		sent = sent[:maxShown] + "…"
	}
	s.sent = sent
	return nil
}

// MarshalJSON writes "auto" or the list of ranges.
func (s ScoutFrames) MarshalJSON() ([]byte, error) {
	if s.Auto {
		return json.Marshal(ScoutAuto)
	}
	if s.Ranges == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Ranges)
}

// ResolveScoutFrames is the frames of the job's frames (sorted, distinct)
// that scout asks to render first, sorted; nil when scout is nil. The
// scout frames must be some of the job's frames, not all of them.
func ResolveScoutFrames(scout *ScoutFrames, frames []int) ([]int, error) {
	if scout == nil || len(frames) == 0 {
		return nil, nil
	}
	const field = "scoutFrames"
	var picked []int
	switch {
	case scout.sent != "":
		return nil, InvalidField(field, "must be %q (the first, middle and last frames) or a list of frame ranges such as [\"1\", \"50-52\"], not %s", ScoutAuto, scout.sent)
	case scout.Auto:
		picked = []int{frames[0], frames[(len(frames)-1)/2], frames[len(frames)-1]}
		slices.Sort(picked)
		picked = slices.Compact(picked)
	default:
		if len(scout.Ranges) == 0 {
			return nil, InvalidField(field, "is an empty list; give frame ranges such as [\"%d\"], or %q", frames[0], ScoutAuto)
		}
		var err error
		if picked, err = ExpandFrames(scout.Ranges, frames[0], frames[len(frames)-1]); err != nil {
			return nil, InvalidField(field, "%s", err)
		}
		for _, f := range picked {
			if _, ok := slices.BinarySearch(frames, f); !ok {
				return nil, InvalidField(field, "frame %d is not one of the frames the job renders (%s)", f, strings.Join(CompactRanges(frames), ", "))
			}
		}
	}
	if len(picked) == len(frames) {
		return nil, InvalidField(field, "names every frame the job renders (%s), so there would be nothing to approve; leave scoutFrames out, or name fewer frames", strings.Join(CompactRanges(frames), ", "))
	}
	return picked, nil
}

// RetryFailed is RetryRequest.Frames' one value: every frame of the job
// that did not complete.
const RetryFailed = "failed"

// RetryRequest is the body of POST /jobs/{id}/retry (ours): exactly one
// of Frames ("failed") and FrameRanges (frames of the job's own).
type RetryRequest struct {
	Frames      string   `json:"frames,omitempty"`
	FrameRanges []string `json:"frameRanges,omitempty"`
}

// RetryFrames is the frames a retry renders again, sorted: with
// Frames "failed", every frame of the job that did not complete (failed,
// or canceled when the job failed or was canceled); with FrameRanges,
// the frames they name, each of which must be one of the job's, and which
// must take in every frame that did not complete. frames
// holds every frame of the job and its status. A failed job whose frames
// all completed (its finalizing failed) is retried with no frame to
// render: answered as an empty list, which the caller decides about.
func RetryFrames(req RetryRequest, frames map[int]FrameStatus) ([]int, error) {
	const example = `{"frames": "failed"} or {"frameRanges": ["12", "40-45"]}`
	switch {
	case req.Frames == "" && req.FrameRanges == nil:
		return nil, &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Field: "frames",
			Message: "say which frames to render again: send " + example}
	case req.Frames != "" && req.FrameRanges != nil:
		return nil, &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Field: "frameRanges",
			Message: "send either frames or frameRanges, not both: " + example}
	case req.Frames != "" && req.Frames != RetryFailed:
		return nil, &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Field: "frames",
			Message: fmt.Sprintf("frames must be %q (every frame that did not complete), not %q; name other frames with frameRanges", RetryFailed, req.Frames)}
	}
	own := make([]int, 0, len(frames))
	for f := range frames {
		own = append(own, f)
	}
	slices.Sort(own)
	if req.Frames == RetryFailed {
		var out []int
		for _, f := range own {
			if frames[f] != FrameCompleted {
				out = append(out, f)
			}
		}
		return out, nil
	}
	bad := func(format string, args ...any) error {
		return &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Field: "frameRanges", Message: "frameRanges: " + fmt.Sprintf(format, args...)}
	}
	if len(own) == 0 {
		return nil, bad("the job has no frames to render again")
	}
	if len(req.FrameRanges) == 0 {
		return nil, bad("is an empty list; name frames of the job's, such as [\"%d\"]", own[0])
	}
	picked, err := ExpandFrames(req.FrameRanges, own[0], own[len(own)-1])
	if err != nil {
		return nil, bad("%s (the job renders %s)", err, strings.Join(CompactRanges(own), ", "))
	}
	for _, f := range picked {
		if _, ok := frames[f]; !ok {
			return nil, bad("frame %d is not one of the job's frames (%s)", f, strings.Join(CompactRanges(own), ", "))
		}
	}
	// The job completes only once every frame has: a frame that did not
	// complete and is left out would leave it rendering for ever.
	var left []int
	for _, f := range own {
		if _, named := slices.BinarySearch(picked, f); !named && frames[f] != FrameCompleted {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		noun := "frames"
		if len(left) == 1 {
			noun = "frame"
		}
		return nil, bad("%s %s of the job did not complete and must render too for the job to complete: add them, or send {\"frames\": \"failed\"}",
			noun, strings.Join(CompactRanges(left), ", "))
	}
	return picked, nil
}

// The rules that set a failing render node aside.
const (
	// BlockAfterFailedChunks is how many of a job's chunks may fail on one
	// render node before it takes no more of that job's chunks.
	BlockAfterFailedChunks = 2
	// SickAfterJobs is how many different jobs' chunks may fail in a row
	// on one render node (none succeeding between) before it is sick and
	// takes nothing until `renderfarm workers enable NAME`.
	SickAfterJobs = 3
	// DefaultMaxFailedChunks is how many chunks of a job may fail, on
	// whichever render nodes, before the job fails: a file that fails
	// everywhere (a missing datablock, memory it needs on every node)
	// fails its job rather than being tried on every node of the farm.
	DefaultMaxFailedChunks = 3
)

// WorkerStanding is what the farm holds against a render node, for one
// job: whether it is sick, and whether it is blocked on the job.
type WorkerStanding struct {
	Sick         bool
	BlockedOnJob bool
}

// MayTake is the one rule of which render node takes which work: a sick
// node takes nothing, and a node blocked on a job takes none of its
// chunks. A node that may not take a task hands it back without spending
// an attempt, for another node.
func MayTake(s WorkerStanding) bool { return !s.Sick && !s.BlockedOnJob }

// Scouts are the job's scout frames, none when the request asked for
// none.
func (fc *FinalConfig) Scouts() []int {
	if fc == nil || len(fc.ScoutFrames) == 0 {
		return nil
	}
	// Written by CompactRanges, so they read back whole.
	frames, _ := ExpandFrames(fc.ScoutFrames, 0, MaxFrame)
	return frames
}

// FirstFrame is the first frame the job renders, 0 when it renders none.
func (fc *FinalConfig) FirstFrame() int {
	if fc == nil || len(fc.FrameRanges) == 0 {
		return 0
	}
	r, err := ParseFrameRange(fc.FrameRanges[0])
	if err != nil {
		return 0
	}
	return r.Start
}
