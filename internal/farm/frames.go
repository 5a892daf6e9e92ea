package farm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxFramesPerJob bounds how many frames one render request may ask for, so
// that a typo such as "1-1000000" cannot flood the queue.
const MaxFramesPerJob = 100_000

// MaxSplitPartsPerRender bounds the parts a render request splits its
// frames into (frames times splitFrame.parts). Each part is a task of its
// own, inserted in the request's transaction: at the largest split, 64
// parts, the 100,000 frames a request may have would be 6.4 million tasks
// and as many part rows written in one request, where a split render is
// for a few long frames.
const MaxSplitPartsPerRender = MaxFramesPerJob

// MaxRenderTasksPerJob bounds the render tasks (chunks, and the parts of
// split frames) one job makes over its life: its render, and every resume
// and retry, each of which makes new tasks for the frames it renders while
// the earlier ones stay recorded. Without it, suspending and resuming a
// job of 100,000 one-frame chunks made 100,000 task rows a cycle, two
// requests each, without end; a million is ten renders of the largest job.
const MaxRenderTasksPerJob = 1_000_000

// MaxFrame is the highest frame number Blender accepts.
const MaxFrame = 1_048_574

// MaxFrameRanges bounds the frame range strings of one list in a request
// (frameRanges, scoutFrames), and the ranges the frames they name make once
// merged (finalConfig.frameRanges, scoutFrames). Every job carries both
// lists in each answer, a GET /jobs page a hundred jobs: a list of 100,000
// single frames, or two stepped ranges that interleave into as many short
// runs, made each job's JSON a megabyte more. A thousand ranges is far
// more than a shot's frames are ever named with ("1-250", "1-250x5", a few
// retakes).
const MaxFrameRanges = 1000

// MaxFrameRangeBytes bounds one frame range string as sent: the longest
// meaningful one, "1048574-1048574x1048574", is 23 bytes, and a string
// padded with a megabyte of spaces would be stored and shown as sent.
const MaxFrameRangeBytes = 32

// FrameRange is one element of requestedRenderConfig.frameRanges:
// "7", "1-250" or "1-250x5" (every fifth frame).
type FrameRange struct {
	Start, End, Step int
}

func (r FrameRange) String() string {
	switch {
	case r.Start == r.End:
		return strconv.Itoa(r.Start)
	case r.Step == 1:
		return fmt.Sprintf("%d-%d", r.Start, r.End)
	default:
		return fmt.Sprintf("%d-%dx%d", r.Start, r.End, r.Step)
	}
}

// ParseFrameRange reads one frame range string. Frames are never negative
// here: a leading '-' would make "-5-3" ambiguous, and a farm has no use for
// negative frames.
func ParseFrameRange(s string) (FrameRange, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return FrameRange{}, fmt.Errorf("empty frame range; use \"7\", \"1-250\" or \"1-250x5\"")
	}
	body, stepText, hasStep := strings.Cut(text, "x")
	startText, endText, isRange := strings.Cut(body, "-")
	start, err := parseFrameNumber(startText, s)
	if err != nil {
		return FrameRange{}, err
	}
	r := FrameRange{Start: start, End: start, Step: 1}
	if isRange {
		if r.End, err = parseFrameNumber(endText, s); err != nil {
			return FrameRange{}, err
		}
	}
	if hasStep {
		if !isRange {
			return FrameRange{}, fmt.Errorf("frame range %q has a step but no end; write it as \"start-endxstep\"", s)
		}
		// A step beyond MaxFrame could only overflow when frames are
		// counted out, so it is refused like a frame beyond MaxFrame.
		step, err := strconv.Atoi(stepText)
		if err != nil || step < 1 || step > MaxFrame {
			return FrameRange{}, fmt.Errorf("frame range %q: the step after 'x' must be a whole number of at least 1 and at most %d", s, MaxFrame)
		}
		r.Step = step
	}
	if r.End < r.Start {
		return FrameRange{}, fmt.Errorf("frame range %q ends before it starts; write it as \"%d-%d\"", s, r.End, r.Start)
	}
	return r, nil
}

// ParseFrameSpan reads a span of frame numbers, "1001-2000", or one
// frame, "7": what a request (or `renderfarm progress --frames`) names
// to list those frames of a job. It is stricter than ParseFrameRange: no
// step, no spaces, digits only, each number from 0 to MaxFrame; the
// error says what is wrong with s.
func ParseFrameSpan(s string) (FrameRange, error) {
	number := func(text string) (int, bool) {
		if text == "" || len(text) > 7 || strings.Trim(text, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.Atoi(text)
		return n, err == nil && n <= MaxFrame
	}
	startText, endText, isSpan := strings.Cut(s, "-")
	if !isSpan {
		endText = startText
	}
	start, okStart := number(startText)
	end, okEnd := number(endText)
	switch {
	case !okStart || !okEnd:
		return FrameRange{}, fmt.Errorf("not %q: frame numbers are whole numbers from 0 to %d", s, MaxFrame)
	case end < start:
		return FrameRange{}, fmt.Errorf("not %q, which ends before it starts", s)
	}
	return FrameRange{Start: start, End: end, Step: 1}, nil
}

func parseFrameNumber(text, whole string) (int, error) {
	n, err := strconv.Atoi(text)
	if err != nil || text == "" || text[0] == '+' {
		return 0, fmt.Errorf("frame range %q is not of the form \"7\", \"1-250\" or \"1-250x5\"", whole)
	}
	if n < 0 || n > MaxFrame {
		return 0, fmt.Errorf("frame range %q: frame numbers go from 0 to %d", whole, MaxFrame)
	}
	return n, nil
}

// ExpandFrames turns frame range strings into the sorted, distinct frames
// they name, checking each against the scene's own range [first, last] so
// that a request cannot render frames the file does not have.
//
// A frame counts against MaxFramesPerJob each time a range names it, so the
// work of expanding is bounded too: counting only distinct frames let one
// body of 1 MiB repeat "1-50000" a hundred thousand times, each repeat
// adding nothing and allowed, for minutes of CPU in one request.
//
// At most MaxFrameRanges strings of at most MaxFrameRangeBytes each are
// read, and the frames named may make at most MaxFrameRanges ranges once
// merged (CompactRanges), which is how the job records them.
func ExpandFrames(ranges []string, first, last int) ([]int, error) {
	if len(ranges) > MaxFrameRanges {
		return nil, fmt.Errorf("%d frame ranges given; at most %d: merge frames into ranges such as \"1-250\" or \"1-250x5\", or split the job", len(ranges), MaxFrameRanges)
	}
	for _, s := range ranges {
		if len(s) > MaxFrameRangeBytes {
			return nil, fmt.Errorf("a frame range of %d bytes given (%q…); a frame range is at most %d bytes, such as \"1-250x5\"", len(s), truncateForMessage(s, 16), MaxFrameRangeBytes)
		}
	}
	seen := make(map[int]bool)
	named := 0
	for _, s := range ranges {
		r, err := ParseFrameRange(s)
		if err != nil {
			return nil, err
		}
		// A stepped range ends at its last frame, not at what it says:
		// "1-12x5" names 1, 6 and 11.
		lastNamed := r.Start + (r.End-r.Start)/r.Step*r.Step
		if r.Start < first || lastNamed > last {
			return nil, fmt.Errorf("frame range %q is outside the scene's frames %d-%d", s, first, last)
		}
		// Count before expanding, so a huge range is refused without
		// building it.
		inRange := (r.End-r.Start)/r.Step + 1
		if len(seen)+inRange > MaxFramesPerJob {
			return nil, fmt.Errorf("frame ranges ask for more than %d frames; split the job", MaxFramesPerJob)
		}
		if named+inRange > MaxFramesPerJob {
			return nil, fmt.Errorf("frame ranges name more than %d frames, counting a frame again each time another range names it; name each frame once, or split the job", MaxFramesPerJob)
		}
		named += inRange
		for f := r.Start; f <= r.End; f += r.Step {
			seen[f] = true
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("no frames to render; give at least one frame range such as \"%d-%d\"", first, last)
	}
	frames := make([]int, 0, len(seen))
	for f := range seen {
		frames = append(frames, f)
	}
	sort.Ints(frames)
	if runs := len(CompactRanges(frames)); runs > MaxFrameRanges {
		return nil, fmt.Errorf("the frames named make %d separate ranges once merged; at most %d: name frames that run on, such as \"1-250\" or \"1-250x5\", or split the job", runs, MaxFrameRanges)
	}
	return frames, nil
}

// truncateForMessage is the first n bytes of s, cut at a character
// boundary, for an error that quotes what was sent.
func truncateForMessage(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// CompactRanges writes sorted distinct frames back as a short list of
// ranges, which is how finalConfig records them: runs of consecutive frames
// become "a-b", and runs of three or more frames at an equal step "a-bxS".
func CompactRanges(frames []int) []string {
	var out []string
	for i := 0; i < len(frames); {
		j, step := i, 1
		if i+1 < len(frames) {
			step = frames[i+1] - frames[i]
		}
		for j+1 < len(frames) && frames[j+1]-frames[j] == step {
			j++
		}
		if step != 1 && j-i < 2 {
			// Two frames with a gap are clearer as two entries.
			j = i
		}
		out = append(out, FrameRange{Start: frames[i], End: frames[j], Step: max(step, 1)}.String())
		i = j + 1
	}
	return out
}

// MaxChunkSize bounds chunkSize: one chunk is one Blender process, and a
// process should not hold more frames than a worker can reasonably lose.
const MaxChunkSize = 1000

// DefaultChunkSize spreads frames evenly over the workers expected to take
// them: one Blender start per worker is the least overhead that still lets
// every worker help, and a cap keeps a restart from redoing too much.
func DefaultChunkSize(frames, workers int) int {
	if workers < 1 {
		workers = 1
	}
	size := (frames + workers - 1) / workers
	return max(1, min(size, 100))
}

// Chunks splits frames into consecutive groups of at most size frames.
func Chunks(frames []int, size int) [][]int {
	if size < 1 {
		size = 1
	}
	var out [][]int
	for start := 0; start < len(frames); start += size {
		out = append(out, frames[start:min(start+size, len(frames))])
	}
	return out
}
