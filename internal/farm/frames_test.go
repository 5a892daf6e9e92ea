package farm_test

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func TestParseFrameRangeAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want farm.FrameRange
	}{
		{"a single frame", "7", farm.FrameRange{Start: 7, End: 7, Step: 1}},
		{"frame zero", "0", farm.FrameRange{Start: 0, End: 0, Step: 1}},
		{"a range", "1-250", farm.FrameRange{Start: 1, End: 250, Step: 1}},
		{"a range of one frame", "5-5", farm.FrameRange{Start: 5, End: 5, Step: 1}},
		{"a range with a step", "1-250x5", farm.FrameRange{Start: 1, End: 250, Step: 5}},
		{"a step larger than the range", "1-3x10", farm.FrameRange{Start: 1, End: 3, Step: 10}},
		{"spaces around are ignored", "  1-250x5\t", farm.FrameRange{Start: 1, End: 250, Step: 5}},
		{"the highest frame Blender accepts", fmt.Sprint(farm.MaxFrame), farm.FrameRange{Start: farm.MaxFrame, End: farm.MaxFrame, Step: 1}},
		{"a step as large as the highest frame", fmt.Sprintf("0-%dx%d", farm.MaxFrame, farm.MaxFrame), farm.FrameRange{Start: 0, End: farm.MaxFrame, Step: farm.MaxFrame}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := farm.ParseFrameRange(tt.in)
			if err != nil {
				t.Fatalf("ParseFrameRange(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseFrameRange(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseFrameRangeRefuses(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantMessage string // a part of the message that says what to do
	}{
		{"a range that ends before it starts, suggesting the right order", "5-1", `write it as "1-5"`},
		{"letters", "a-b", `not of the form "7", "1-250" or "1-250x5"`},
		{"a word", "all", `not of the form`},
		{"an empty string", "", "empty frame range"},
		{"only spaces", "   ", "empty frame range"},
		{"a range with no end", "1-", "not of the form"},
		{"a negative frame", "-5", "not of the form"},
		{"a plus sign", "+3", "not of the form"},
		{"a plus sign on the end", "1-+3", "not of the form"},
		{"two dashes", "1-2-3", "not of the form"},
		{"spaces inside a number", "1 0", "not of the form"},
		{"a step of zero", "1-10x0", "must be a whole number of at least 1"},
		{"a negative step", "1-10x-2", "must be a whole number of at least 1"},
		{"an empty step", "1-10x", "must be a whole number of at least 1"},
		{"a step that is not a number", "1-10xfive", "must be a whole number of at least 1"},
		{"a step with no end", "1x2", "has a step but no end"},
		{"a step on nothing", "x2", "not of the form"},
		{"a frame beyond the highest Blender accepts", fmt.Sprint(farm.MaxFrame + 1), fmt.Sprintf("frame numbers go from 0 to %d", farm.MaxFrame)},
		{"an end beyond the highest frame", "1-2000000", fmt.Sprintf("frame numbers go from 0 to %d", farm.MaxFrame)},
		{"a number too large for an int", "99999999999999999999", "not of the form"},
		{"a step beyond the highest frame", fmt.Sprintf("1-10x%d", farm.MaxFrame+1), "step"},
		{"a step that would overflow when added", "1-10x9223372036854775807", "step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := farm.ParseFrameRange(tt.in)
			if err == nil {
				t.Fatalf("ParseFrameRange(%q) = %+v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.wantMessage) {
				t.Errorf("ParseFrameRange(%q) error %q does not say %q", tt.in, err, tt.wantMessage)
			}
			if got != (farm.FrameRange{}) {
				t.Errorf("ParseFrameRange(%q) returned %+v with its error, want the zero range", tt.in, got)
			}
		})
	}
}

func TestFrameRangeStringReadsBackTheSameRange(t *testing.T) {
	tests := []struct {
		r    farm.FrameRange
		want string
	}{
		{farm.FrameRange{Start: 7, End: 7, Step: 1}, "7"},
		{farm.FrameRange{Start: 1, End: 250, Step: 1}, "1-250"},
		{farm.FrameRange{Start: 1, End: 250, Step: 5}, "1-250x5"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.want)
		}
		back, err := farm.ParseFrameRange(tt.want)
		if err != nil || back != tt.r {
			t.Errorf("ParseFrameRange(%q) = %+v, %v; want %+v", tt.want, back, err, tt.r)
		}
	}
}

func TestExpandFrames(t *testing.T) {
	tests := []struct {
		name        string
		ranges      []string
		first, last int
		want        []int
	}{
		{"one frame", []string{"7"}, 1, 250, []int{7}},
		{"a range", []string{"1-5"}, 1, 250, []int{1, 2, 3, 4, 5}},
		{"a range with a step stops at or before its end", []string{"1-10x4"}, 1, 250, []int{1, 5, 9}},
		{"overlapping ranges name each frame once", []string{"1-5", "3-8"}, 1, 250, []int{1, 2, 3, 4, 5, 6, 7, 8}},
		{"ranges out of order come back sorted", []string{"20", "1-3", "10"}, 1, 250, []int{1, 2, 3, 10, 20}},
		{"the same frame twice is one frame", []string{"4", "4", "3-4"}, 1, 250, []int{3, 4}},
		{"stepped ranges interleave", []string{"1-10x3", "1-10x2"}, 1, 250, []int{1, 3, 4, 5, 7, 9, 10}},
		{"the scene's first and last frames are inside", []string{"1", "250"}, 1, 250, []int{1, 250}},
		{"a scene that starts at zero", []string{"0-2"}, 0, 10, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := farm.ExpandFrames(tt.ranges, tt.first, tt.last)
			if err != nil {
				t.Fatalf("ExpandFrames(%q, %d, %d): %v", tt.ranges, tt.first, tt.last, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExpandFrames(%q, %d, %d) = %v, want %v", tt.ranges, tt.first, tt.last, got, tt.want)
			}
		})
	}
}

func TestExpandFramesRefuses(t *testing.T) {
	tests := []struct {
		name        string
		ranges      []string
		first, last int
		wantMessage []string
	}{
		{"a range starting before the scene, naming the range and the scene's frames", []string{"0-5"}, 1, 24,
			[]string{`"0-5"`, "outside the scene's frames 1-24"}},
		{"a range ending after the scene", []string{"1-5", "20-30"}, 1, 24,
			[]string{`"20-30"`, "outside the scene's frames 1-24"}},
		{"a single frame after the scene", []string{"25"}, 1, 24, []string{`"25"`, "1-24"}},
		{"no ranges at all, suggesting the scene's range", []string{}, 1, 24, []string{"no frames to render", `"1-24"`}},
		{"a malformed range among good ones", []string{"1-5", "5-1"}, 1, 24, []string{`"5-1"`, `write it as "1-5"`}},
		{"one frame more than a job may have", []string{fmt.Sprintf("1-%d", farm.MaxFramesPerJob+1)}, 0, farm.MaxFrame,
			[]string{fmt.Sprintf("more than %d frames", farm.MaxFramesPerJob), "split the job"}},
		{"a stepped range one frame over the limit", []string{fmt.Sprintf("0-%dx10", farm.MaxFramesPerJob*10)}, 0, farm.MaxFrame,
			[]string{fmt.Sprintf("more than %d frames", farm.MaxFramesPerJob)}},
		{"ranges that are over the limit only together", []string{"0-59999", "60000-119999"}, 0, farm.MaxFrame,
			[]string{fmt.Sprintf("more than %d frames", farm.MaxFramesPerJob)}},
		{"one range named again and again until its frames, counted each time, pass the limit", []string{"0-49999", "0-49999", "0-49999"}, 0, farm.MaxFrame,
			[]string{fmt.Sprintf("name more than %d frames", farm.MaxFramesPerJob), "name each frame once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := farm.ExpandFrames(tt.ranges, tt.first, tt.last)
			if err == nil {
				t.Fatalf("ExpandFrames(%q, %d, %d) = %d frames, want an error", tt.ranges, tt.first, tt.last, len(got))
			}
			for _, part := range tt.wantMessage {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
		})
	}
}

func TestExpandFramesAllowsExactlyMaxFramesPerJob(t *testing.T) {
	for _, ranges := range [][]string{
		{fmt.Sprintf("1-%d", farm.MaxFramesPerJob)},
		{fmt.Sprintf("0-%dx10", farm.MaxFramesPerJob*10-1)},
		{"0-49999", "50000-99999"},
	} {
		frames, err := farm.ExpandFrames(ranges, 0, farm.MaxFrame)
		if err != nil {
			t.Errorf("ExpandFrames(%q): %v", ranges, err)
			continue
		}
		if len(frames) != farm.MaxFramesPerJob {
			t.Errorf("ExpandFrames(%q) = %d frames, want %d", ranges, len(frames), farm.MaxFramesPerJob)
		}
	}
}

func TestExpandFramesRefusesAHugeRangeWithoutBuildingIt(t *testing.T) {
	// A whole range over the limit is refused by counting, so asking for
	// a million frames costs almost nothing.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := farm.ExpandFrames([]string{"0-1000000"}, 0, farm.MaxFrame)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("ExpandFrames accepted a million frames")
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64<<10 {
		t.Errorf("refusing a million frames allocated %d bytes; it must be refused before the frames are built", allocated)
	}
}

func TestExpandFramesRefusesARangeRepeatedPastTheLimitAtOnce(t *testing.T) {
	// A list may hold a thousand copies of "1-50000" (a 1 MiB body held
	// a hundred thousand before lists were bounded). Were only distinct
	// frames counted, each copy would be accepted and walked again.
	// Counting every frame a range names refuses it at the third copy.
	repeated := make([]string, farm.MaxFrameRanges)
	for i := range repeated {
		repeated[i] = "1-50000"
	}
	start := time.Now()
	_, err := farm.ExpandFrames(repeated, 1, 100_000)
	if err == nil {
		t.Fatal("ExpandFrames accepted a range repeated 1,000 times")
	}
	if !strings.Contains(err.Error(), "name each frame once") {
		t.Errorf("error %q does not say to name each frame once", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusing a repeated range took %v", took)
	}

	// Ranges that overlap a little, as a person writes them, are fine.
	frames, err := farm.ExpandFrames([]string{"1-100", "50-150", "100"}, 1, 250)
	if err != nil || len(frames) != 150 {
		t.Errorf("ExpandFrames of overlapping ranges = %d frames, %v; want 150", len(frames), err)
	}
}

func TestCompactRanges(t *testing.T) {
	tests := []struct {
		name   string
		frames []int
		want   []string
	}{
		{"no frames", nil, nil},
		{"one frame", []int{5}, []string{"5"}},
		{"a run", []int{1, 2, 3, 4}, []string{"1-4"}},
		{"runs and single frames", []int{1, 2, 3, 5, 7, 8, 10}, []string{"1-3", "5", "7-8", "10"}},
		{"a stepped range stays stepped", []int{1, 5, 9}, []string{"1-9x4"}},
		{"two frames with a gap stay apart", []int{1, 5}, []string{"1", "5"}},
		{"a run at one step, then another", []int{1, 3, 5, 6, 7, 20}, []string{"1-5x2", "6-7", "20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := farm.CompactRanges(tt.frames)
			if !slices.Equal(got, tt.want) {
				t.Errorf("CompactRanges(%v) = %q, want %q", tt.frames, got, tt.want)
			}
			if len(tt.frames) == 0 {
				return
			}
			back, err := farm.ExpandFrames(got, tt.frames[0], tt.frames[len(tt.frames)-1])
			if err != nil || !slices.Equal(back, tt.frames) {
				t.Errorf("ExpandFrames(%q) = %v, %v; want the frames back, %v", got, back, err, tt.frames)
			}
		})
	}
}

func TestDefaultChunkSize(t *testing.T) {
	tests := []struct {
		name            string
		frames, workers int
		want            int
	}{
		{"frames spread evenly over the workers", 24, 4, 6},
		{"an uneven split rounds up, so no worker gets a tiny extra chunk", 25, 4, 7},
		{"one worker takes everything in one Blender start", 24, 1, 24},
		{"no known workers counts as one", 24, 0, 24},
		{"a negative worker count counts as one", 24, -3, 24},
		{"more workers than frames gives one frame each", 3, 10, 1},
		{"no frames still gives a usable size", 0, 4, 1},
		{"a chunk never holds more than 100 frames", 1000, 1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := farm.DefaultChunkSize(tt.frames, tt.workers); got != tt.want {
				t.Errorf("DefaultChunkSize(%d, %d) = %d, want %d", tt.frames, tt.workers, got, tt.want)
			}
		})
	}
}

func TestChunks(t *testing.T) {
	tests := []struct {
		name   string
		frames []int
		size   int
		want   [][]int
	}{
		{"an even split", []int{1, 2, 3, 4, 5, 6}, 3, [][]int{{1, 2, 3}, {4, 5, 6}}},
		{"the remainder goes in a last, smaller chunk", []int{1, 2, 3, 4, 5, 6, 7}, 3, [][]int{{1, 2, 3}, {4, 5, 6}, {7}}},
		{"a size larger than the frames makes one chunk", []int{10, 20}, 5, [][]int{{10, 20}}},
		{"frames keep their order and gaps", []int{1, 5, 9, 13}, 2, [][]int{{1, 5}, {9, 13}}},
		{"size one makes a chunk per frame", []int{1, 2, 3}, 1, [][]int{{1}, {2}, {3}}},
		{"size zero is taken as one", []int{1, 2}, 0, [][]int{{1}, {2}}},
		{"a negative size is taken as one", []int{1, 2}, -5, [][]int{{1}, {2}}},
		{"no frames make no chunks", nil, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := farm.Chunks(tt.frames, tt.size)
			if !slices.EqualFunc(got, tt.want, slices.Equal[[]int]) {
				t.Errorf("Chunks(%v, %d) = %v, want %v", tt.frames, tt.size, got, tt.want)
			}
		})
	}
}

// A stepped range is within the scene when every frame it names is, even
// if its written end is not.
func TestExpandFramesChecksTheLastFrameNamed(t *testing.T) {
	frames, err := farm.ExpandFrames([]string{"1-12x5"}, 1, 11)
	if err != nil {
		t.Fatalf("ExpandFrames(1-12x5) on a 1-11 scene: %v", err)
	}
	if want := []int{1, 6, 11}; !slices.Equal(frames, want) {
		t.Errorf("frames = %v, want %v", frames, want)
	}
}

// TestFrameRangeListsAreBounded: a list of more than MaxFrameRanges
// strings, a string of more than MaxFrameRangeBytes (a frame padded with
// spaces), and frames that interleave into more than MaxFrameRanges runs
// once merged are each refused with a message that says what to send;
// a thousand ranges, and a long stepped range, are fine.
func TestFrameRangeListsAreBounded(t *testing.T) {
	singles := make([]string, farm.MaxFrameRanges+1)
	for i := range singles {
		singles[i] = strconv.Itoa(2 * i)
	}
	padded := strings.Repeat(" ", 1<<20) + "7"
	for _, tt := range []struct {
		name   string
		ranges []string
		want   string
	}{
		{"a frame each, one too many", singles, "1001 frame ranges given; at most 1000"},
		{"a frame padded with a megabyte of spaces", []string{padded}, "a frame range is at most 32 bytes"},
		{"two stepped ranges that interleave", []string{"0-9000x2", "1-9000x3"}, "separate ranges once merged; at most 1000"},
	} {
		_, err := farm.ExpandFrames(tt.ranges, 0, farm.MaxFrame)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%s: the error is %d bytes; it must not quote what was sent whole", tt.name, len(err.Error()))
		}
	}
	if frames, err := farm.ExpandFrames(singles[:farm.MaxFrameRanges], 0, farm.MaxFrame); err != nil || len(frames) != farm.MaxFrameRanges {
		t.Errorf("a thousand single frames: %d frames, %v; want them all", len(frames), err)
	}
	if frames, err := farm.ExpandFrames([]string{"0-99998x2"}, 0, farm.MaxFrame); err != nil || len(frames) != 50_000 {
		t.Errorf("every other frame of 100,000: %d frames, %v; want 50,000", len(frames), err)
	}
}

// TestParseFrameSpanTakesTwoFrameNumbersOrOne: a span is "A-B" or "A",
// digits only, from 0 to MaxFrame, never reversed, never stepped.
func TestParseFrameSpanTakesTwoFrameNumbersOrOne(t *testing.T) {
	for in, want := range map[string]farm.FrameRange{
		"1001-2000": {1001, 2000, 1}, "7": {7, 7, 1}, "0-1048574": {0, farm.MaxFrame, 1}, "0000007": {7, 7, 1},
	} {
		if got, err := farm.ParseFrameSpan(in); err != nil || got != want {
			t.Errorf("farm.ParseFrameSpan(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", "1-", "-5", "+5", "2000-1001", "1-10x2", " 7", "7 ", "1 - 2", "1048575", "00000007", "１", "1-2-3", "1e3"} {
		if got, err := farm.ParseFrameSpan(in); err == nil || !strings.Contains(err.Error(), "not ") {
			t.Errorf("farm.ParseFrameSpan(%q) = %+v, %v; want an error saying what is wrong", in, got, err)
		}
	}
}
