package farm_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func framesOf(first, last int) []int {
	var out []int
	for f := first; f <= last; f++ {
		out = append(out, f)
	}
	return out
}

func scoutOf(t *testing.T, body string) *farm.ScoutFrames {
	t.Helper()
	var s farm.ScoutFrames
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("unmarshal %s: %v", body, err)
	}
	return &s
}

func TestScoutFramesPickTheFramesToRenderFirst(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		frames []int
		want   []int
	}{
		{"auto is the first, middle and last frame", `"auto"`, framesOf(1, 30), []int{1, 15, 30}},
		{"auto on a stepped range picks frames of the job", `"auto"`, []int{1, 6, 11, 16, 21}, []int{1, 11, 21}},
		{"auto on two frames", `"auto"`, []int{4, 5}, nil},
		{"auto on three frames", `"auto"`, []int{4, 5, 9}, nil},
		{"auto on four frames", `"auto"`, []int{1, 2, 3, 4}, []int{1, 2, 4}},
		{"ranges", `["1", "10-12"]`, framesOf(1, 30), []int{1, 10, 11, 12}},
		{"ranges in any order, repeated", `["12", "3", "12"]`, framesOf(1, 30), []int{3, 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := farm.ResolveScoutFrames(scoutOf(t, tt.body), tt.frames)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ResolveScoutFrames(%s, %v) = %v; want a refusal: every frame would be a scout", tt.body, tt.frames, got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ResolveScoutFrames(%s, %v) = %v, %v; want %v", tt.body, tt.frames, got, err, tt.want)
			}
		})
	}
	if got, err := farm.ResolveScoutFrames(nil, framesOf(1, 3)); got != nil || err != nil {
		t.Errorf("ResolveScoutFrames(nil) = %v, %v; want none", got, err)
	}
}

func TestScoutFramesRefusalsNameTheField(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`"first"`, `must be "auto"`},
		{`7`, `not 7`},
		{`true`, `not true`},
		{`{"frames": 1}`, `not {"frames": 1}`},
		{`[1, 2]`, `not [1, 2]`},
		{`[]`, `empty list`},
		{`["0"]`, `outside the scene's frames 1-30`},
		{`["31"]`, `outside the scene's frames 1-30`},
		{`["2"]`, `frame 2 is not one of the frames the job renders (1-28x3)`},
		{`["1-28x3"]`, `names every frame`},
		{`["a"]`, `is not of the form`},
	}
	frames := []int{1, 4, 7, 10, 13, 16, 19, 22, 25, 28}
	frames30 := framesOf(1, 30)
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			fr := frames
			if strings.Contains(tt.want, "outside") || tt.body == `["a"]` {
				fr = frames30
			}
			_, err := farm.ResolveScoutFrames(scoutOf(t, tt.body), fr)
			fe, ok := err.(*farm.Error)
			if !ok || fe.Field != "scoutFrames" || fe.Code != farm.CodeInvalidConfig || !strings.Contains(fe.Message, tt.want) {
				t.Errorf("ResolveScoutFrames(%s) = %v; want INVALID_RENDER_CONFIG on scoutFrames saying %q", tt.body, err, tt.want)
			}
		})
	}
}

func TestScoutFramesJSONKeepsWhatWasAsked(t *testing.T) {
	for _, body := range []string{`"auto"`, `["1","15-16"]`} {
		b, err := json.Marshal(scoutOf(t, body))
		if err != nil || string(b) != body {
			t.Errorf("marshal of %s = %s, %v", body, b, err)
		}
	}
	cfg := farm.RenderConfig{ScoutFrames: scoutOf(t, `"auto"`)}
	if cfg.IsEmpty() {
		t.Error("a request with scoutFrames alone is empty; want it to count")
	}
}

func TestResolveConfigRecordsTheScoutFrames(t *testing.T) {
	req := minimalRequest()
	req.ScoutFrames = scoutOf(t, `"auto"`)
	fc, frames, err := farm.ResolveConfig(req, twoScenes(), cpuFarm)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 24 || !slices.Equal(fc.Scouts(), []int{1, 12, 24}) {
		t.Errorf("%d frames, scoutFrames %v; want 24 frames and scouts 1, 12, 24", len(frames), fc.ScoutFrames)
	}
	if fc.FirstFrame() != 1 {
		t.Errorf("FirstFrame() = %d, want 1", fc.FirstFrame())
	}
	req.ScoutFrames = scoutOf(t, `["30"]`)
	if _, _, err := farm.ResolveConfig(req, twoScenes(), cpuFarm); err == nil || !strings.Contains(err.Error(), "scoutFrames") {
		t.Errorf("scout frame 30 of a 24-frame scene: %v, want a refusal naming scoutFrames", err)
	}
}

func TestRetryFramesPicksWhatToRenderAgain(t *testing.T) {
	job := map[int]farm.FrameStatus{
		1: farm.FrameCompleted, 2: farm.FrameCompleted, 3: farm.FrameFailed, 4: farm.FrameCanceled,
		5: farm.FrameCompleted, 11: farm.FrameCompleted,
	}
	tests := []struct {
		name string
		req  farm.RetryRequest
		want []int
	}{
		{"failed is every frame that did not complete", farm.RetryRequest{Frames: "failed"}, []int{3, 4}},
		{"frame ranges of the job's", farm.RetryRequest{FrameRanges: []string{"1", "3-5"}}, []int{1, 3, 4, 5}},
		{"a completed frame may be rendered again", farm.RetryRequest{FrameRanges: []string{"3-4", "11"}}, []int{3, 4, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := farm.RetryFrames(tt.req, job)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("RetryFrames(%+v) = %v, %v; want %v", tt.req, got, err, tt.want)
			}
		})
	}
	done := map[int]farm.FrameStatus{1: farm.FrameCompleted, 2: farm.FrameCompleted}
	if got, err := farm.RetryFrames(farm.RetryRequest{Frames: "failed"}, done); err != nil || len(got) != 0 {
		t.Errorf("failed of a job whose frames all completed = %v, %v; want none, for the caller to decide", got, err)
	}
}

func TestRetryFramesRefusalsNameTheField(t *testing.T) {
	job := map[int]farm.FrameStatus{1: farm.FrameCompleted, 3: farm.FrameFailed, 5: farm.FrameCompleted}
	tests := []struct {
		name  string
		req   farm.RetryRequest
		field string
		want  string
	}{
		{"nothing asked", farm.RetryRequest{}, "frames", `{"frames": "failed"}`},
		{"both asked", farm.RetryRequest{Frames: "failed", FrameRanges: []string{"1"}}, "frameRanges", "not both"},
		{"another word", farm.RetryRequest{Frames: "all"}, "frames", `must be "failed"`},
		{"an empty list", farm.RetryRequest{FrameRanges: []string{}}, "frameRanges", "empty list"},
		{"a frame between the job's", farm.RetryRequest{FrameRanges: []string{"2"}}, "frameRanges", "frame 2 is not one of the job's frames (1-5x2)"},
		{"a frame past the job's", farm.RetryRequest{FrameRanges: []string{"1-9"}}, "frameRanges", "outside the scene's frames 1-5"},
		{"not a range", farm.RetryRequest{FrameRanges: []string{"x"}}, "frameRanges", "is not of the form"},
		{"a frame that did not complete left out", farm.RetryRequest{FrameRanges: []string{"1"}}, "frameRanges", "frame 3 of the job did not complete and must render too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := farm.RetryFrames(tt.req, job)
			fe, ok := err.(*farm.Error)
			if !ok || fe.Kind != farm.KindInvalid || fe.Code != farm.CodeInvalidRequest || fe.Field != tt.field || !strings.Contains(fe.Message, tt.want) {
				t.Errorf("RetryFrames(%+v) = %v; want INVALID_REQUEST on %s saying %q", tt.req, err, tt.field, tt.want)
			}
		})
	}
}

func TestMayTakeSetsSickAndBlockedNodesAside(t *testing.T) {
	tests := []struct {
		standing farm.WorkerStanding
		want     bool
	}{
		{farm.WorkerStanding{}, true},
		{farm.WorkerStanding{Sick: true}, false},
		{farm.WorkerStanding{BlockedOnJob: true}, false},
		{farm.WorkerStanding{Sick: true, BlockedOnJob: true}, false},
	}
	for _, tt := range tests {
		if got := farm.MayTake(tt.standing); got != tt.want {
			t.Errorf("MayTake(%+v) = %v, want %v", tt.standing, got, tt.want)
		}
	}
}
