package blender

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

var update = flag.Bool("update", false, "rewrite testdata/*.events.json from the parser's output")

// capturedNonce stands for the nonces of a captured log's commands, which
// TestCaptureLogs replaces with it.
const capturedNonce = "0123456789abcdef0123456789abcdef"

// capturedFrames are the frames each captured log's chunk rendered (see
// testdata/README.md).
var capturedFrames = map[string][]int{
	"cycles":           {1, 2, 5},
	"eevee":            {1, 2},
	"workbench":        {1, 2},
	"denoiser_missing": {1, 2},
	"settings_refused": {1},
	"script_error":     nil,
}

// TestParserGolden feeds each captured Blender log through a Parser and
// compares the events with the golden file beside it.
func TestParserGolden(t *testing.T) {
	logs, err := filepath.Glob("testdata/*.log")
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatal("no testdata/*.log: capture them with go test -run TestCaptureLogs -capture")
	}
	for _, logPath := range logs {
		name := strings.TrimSuffix(filepath.Base(logPath), ".log")
		t.Run(name, func(t *testing.T) {
			frames, ok := capturedFrames[name]
			if !ok {
				t.Fatalf("%s: add its chunk's frames to capturedFrames", logPath)
			}
			got := parseLog(t, logPath, frames)
			goldenPath := strings.TrimSuffix(logPath, ".log") + ".events.json"
			if *update {
				body, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(goldenPath, append(body, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			body, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			var want []Event
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("events differ from %s (run with -update if the change is right); got:\n%s", goldenPath, gotJSON)
			}
		})
	}
}

func parseLog(t *testing.T, path string, frames []int) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := Parser{Nonce: capturedNonce, Frames: frames}
	events := []Event{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		events = append(events, p.Feed(sc.Text())...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// TestParserLines checks single lines, including the shapes of Blender
// releases newer than the one installed here, and lines a .blend can make
// Blender print to pass for the farm's.
func TestParserLines(t *testing.T) {
	const nonce = capturedNonce
	signal := func(words string) string { return "renderfarm-session " + nonce + " " + words }
	tests := []struct {
		name   string
		frames []int
		lines  []string
		want   []Event
	}{
		{
			name:   "cycles 3.4",
			frames: []int{12},
			lines: []string{
				signal("frame 12"),
				"Fra:12 Mem:9.91M (Peak 11.12M) | Time:00:00.03 | Mem:0.76M, Peak:0.76M | Scene, ViewLayer | Sample 0/4",
				"Fra:12 Mem:10.00M (Peak 11.12M) | Time:00:00.03 | Remaining:00:00.00 | Mem:0.84M, Peak:0.84M | Scene, ViewLayer | Sample 1/4",
				"Fra:12 Mem:10.00M (Peak 11.12M) | Time:00:00.03 | Remaining:00:00.00 | Mem:0.84M, Peak:0.84M | Scene, ViewLayer | Sample 1/4",
				"Fra:12 Mem:10.03M (Peak 11.12M) | Time:00:01.03 | Mem:0.84M, Peak:0.84M | Scene, ViewLayer | Finished",
				"Saved: '/out/frame_0012.png'",
				" Time: 00:01.05 (Saving: 00:00.02)",
				signal("saved 12 1.052"),
			},
			want: []Event{
				{Kind: FrameStarted, Frame: 12},
				{Kind: SampleProgress, Frame: 12, Sample: 0, Samples: 4},
				{Kind: SampleProgress, Frame: 12, Sample: 1, Samples: 4},
				{Kind: FrameSaved, Frame: 12, RenderSeconds: 1.052},
			},
		},
		{
			name:   "cycles 2.9x tiles",
			frames: []int{125},
			lines: []string{
				signal("frame 125"),
				"Fra:125 Mem:12.37M (0.00M, Peak 14.83M) | Time:00:00.13 | Remaining:00:00.14 | Mem:0.71M, Peak:1.20M | Background Lines, RenderLayer | Path Tracing Tile 1/16, Sample 10/10",
			},
			want: []Event{
				{Kind: FrameStarted, Frame: 125},
				{Kind: SampleProgress, Frame: 125, Sample: 10, Samples: 10},
			},
		},
		{
			name:   "eevee",
			frames: []int{1},
			lines: []string{
				signal("frame 1"),
				"Fra:1 Mem:11.63M (Peak 12.74M) | Time:00:08.35 | Rendering 26 / 64 samples",
			},
			want: []Event{
				{Kind: FrameStarted, Frame: 1},
				{Kind: SampleProgress, Frame: 1, Sample: 26, Samples: 64},
			},
		},
		{
			name:   "prefixed lines of newer releases",
			frames: []int{3},
			lines: []string{
				signal("frame 3"),
				"00:01.234  render           | Fra:3 Mem:12.77M (Peak 14.53M) | Time:00:01.02 | Mem:2.74M, Peak:2.74M | Scene, ViewLayer | Sample 16/16",
				`00:01.300  image            | Saved: "/out/frame_0003.exr"`,
				"00:01.400  blend            | ERROR Cannot read file",
			},
			want: []Event{
				{Kind: FrameStarted, Frame: 3},
				{Kind: SampleProgress, Frame: 3, Sample: 16, Samples: 16},
				{Kind: ErrorLine, Frame: 3, Line: "00:01.400  blend            | ERROR Cannot read file"},
			},
		},
		{
			name:   "a signal after what Blender left unfinished on the line",
			frames: []int{7},
			lines:  []string{"Info: half a line" + signal("frame 7"), "Synchronizing" + signal("saved 7 0.5")},
			want:   []Event{{Kind: FrameStarted, Frame: 7}, {Kind: FrameSaved, Frame: 7, RenderSeconds: 0.5}},
		},
		{
			name:   "Blender's Saved: lines and the old marker steer nothing",
			frames: []int{1, 2},
			lines: []string{
				"Saved: '/data/url-signing.key'",
				"Fra:1 Mem:9.05M | Time:00:00.00 | Scene, ViewLayer | Synchronizing object | Saved: '/etc/passwd'",
				"renderfarm: rendering frame 1",
				"Fra:2 Mem:9.05M | Time:00:00.00 | Scene, ViewLayer | Sample 1/4",
			},
			want: nil,
		},
		{
			name:   "signals with another nonce, or none",
			frames: []int{1},
			lines: []string{
				"renderfarm-session ffffffffffffffffffffffffffffffff frame 1",
				"renderfarm-session ffffffffffffffffffffffffffffffff saved 1 0.1",
				"renderfarm-session frame 1",
				"renderfarm-session " + nonce + "0 saved 1 0.1",
			},
			want: nil,
		},
		{
			name:   "signals for frames outside the chunk, or malformed",
			frames: []int{4},
			lines: []string{
				signal("frame 5"),
				signal("saved 3 0.1"),
				signal("saved -4 0.1"),
				signal("saved 4"),
				signal("saved 4 0.1 extra"),
				signal("frame 0x4"),
				signal("frame 4 4"),
				signal("output ../PNG"),
			},
			want: nil,
		},
		{
			name:   "a frame time that is not one counts as none",
			frames: []int{4},
			lines:  []string{signal("saved 4 NaN"), signal("saved 4 -1"), signal("saved 4 1e99")},
			want: []Event{
				{Kind: FrameSaved, Frame: 4},
				{Kind: FrameSaved, Frame: 4},
				{Kind: FrameSaved, Frame: 4},
			},
		},
		{
			name:   "Fra: lines of another frame than the one begun",
			frames: []int{1, 2},
			lines: []string{
				signal("frame 1"),
				"Fra:2 Mem:9.05M | Time:00:00.00 | Scene, ViewLayer | Sample 3/4",
				"Fra:1 Mem:9.05M | Time:00:00.00 | Scene, ViewLayer | Sample 1/4",
			},
			want: []Event{
				{Kind: FrameStarted, Frame: 1},
				{Kind: SampleProgress, Frame: 1, Sample: 1, Samples: 4},
			},
		},
		{
			name:   "errors",
			frames: []int{1},
			lines: []string{
				signal("frame 1"),
				"Fra:1 Mem:9.91M (Peak 11.12M) | Time:00:00.02 | Mem:0.76M, Peak:0.76M | Scene, ViewLayer | Build without OpenImageDenoiser",
				"Error: Build without OpenImageDenoiser",
				"EGL Error (0x3009): EGL_BAD_MATCH: Arguments are inconsistent.",
				"Fra:1 Mem:1M | Time:00:00.02 | Scene, ViewLayer | Error: Out of memory",
			},
			want: []Event{
				{Kind: FrameStarted, Frame: 1},
				{Kind: ErrorLine, Frame: 1, Line: "Error: Build without OpenImageDenoiser"},
				{Kind: ErrorLine, Frame: 1, Line: "Fra:1 Mem:1M | Time:00:00.02 | Scene, ViewLayer | Error: Out of memory"},
			},
		},
		{
			name: "python traceback",
			lines: []string{
				"Error: Python: Traceback (most recent call last):",
				`  File "/tmp/x.py", line 2, in <module>`,
				"    raise RuntimeError(\"boom\")",
				"    ^^^^^^^^^^^^^^^^^^^^^^",
				"RuntimeError: boom",
				"",
				"Error: script failed, file: '/tmp/x.py', exiting.",
			},
			want: []Event{
				{Kind: ErrorLine, Line: "RuntimeError: boom"},
				{Kind: ErrorLine, Line: "Error: script failed, file: '/tmp/x.py', exiting."},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Parser{Nonce: nonce, Frames: tt.frames}
			var got []Event
			for _, line := range tt.lines {
				got = append(got, p.Feed(line)...)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The settings script's report of the output format is kept for the
// session, in its two words, and anything else it is not.
func TestParserOutputFormat(t *testing.T) {
	for line, want := range map[string]string{
		"renderfarm-session " + capturedNonce + " output PNG JP2":         "PNG JP2",
		"renderfarm-session " + capturedNonce + " output OPEN_EXR":        "OPEN_EXR",
		"renderfarm-session " + capturedNonce + " output png JP2":         "",
		"renderfarm-session " + capturedNonce + " output PNG JP2 X":       "",
		"renderfarm-session ffffffffffffffffffffffffffffffff output TIFF": "",
	} {
		p := Parser{Nonce: capturedNonce}
		if events := p.Feed(line); len(events) != 0 || p.output != want {
			t.Errorf("Feed(%q): events %v, output %q; want none and %q", line, events, p.output, want)
		}
	}
}

// TestCaptureLogs records real Blender logs as testdata for the golden tests.
// Paths that change from run to run are replaced with fixed ones.
func TestCaptureLogs(t *testing.T) {
	if !*capture {
		t.Skip("run with -capture to record testdata/*.log from the installed Blender")
	}
	r := needBlender(t)
	cube, eevee := scene(t, "cube.blend"), scene(t, "eevee.blend")
	renders := []struct {
		name string
		job  RenderJob
	}{
		{"cycles", RenderJob{BlendPath: cube, Frames: []int{1, 2, 5}, Settings: Settings{Denoising: ptr(false)}}},
		{"eevee", RenderJob{BlendPath: eevee, Frames: []int{1, 2}}},
		{"workbench", RenderJob{BlendPath: cube, Frames: []int{1, 2}, Settings: Settings{Engine: "BLENDER_WORKBENCH"}}},
		{"denoiser_missing", RenderJob{BlendPath: cube, Frames: []int{1, 2}, Settings: Settings{Denoising: ptr(true)}}},
		{"settings_refused", RenderJob{BlendPath: cube, Frames: []int{1}, Settings: Settings{ColorManagement: "aces"}}},
	}
	for _, rc := range renders {
		var lines []string
		rc.job.OutputDir = t.TempDir()
		_, err := r.render(context.Background(), rc.job, nil, func(line string) { lines = append(lines, line) })
		t.Logf("%s: %v", rc.name, err)
		writeCapturedLog(t, rc.name, lines, rc.job.OutputDir)
	}

	// A Python exception, as a script that breaks shows it.
	var lines []string
	argv := r.argv(cube, "--python-expr", "import bpy\nbpy.context.scene.render.engine = 'NO_SUCH_ENGINE'\n")
	status, err := r.run(context.Background(), command{argv: argv, env: r.env(""),
		paths: sandbox.Paths{ReadOnly: []string{filepath.Dir(cube)}}}, func(line string) { lines = append(lines, line) })
	t.Logf("script_error: exit %d, %v", status.exitCode, err)
	writeCapturedLog(t, "script_error", lines, "")
}

var (
	runDirRe = regexp.MustCompile(`renderfarm-blender-\d+`)
	nonceRe  = regexp.MustCompile(`renderfarm-session [0-9a-f]{32}`)
)

func writeCapturedLog(t *testing.T, name string, lines []string, outDir string) {
	t.Helper()
	scenes, err := filepath.Abs(scenesDir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, line := range lines {
		if outDir != "" {
			line = strings.ReplaceAll(line, outDir, "/tmp/out")
		}
		line = strings.ReplaceAll(line, scenes, "/scenes")
		line = runDirRe.ReplaceAllString(line, "renderfarm-blender-RUN")
		line = nonceRe.ReplaceAllString(line, "renderfarm-session "+capturedNonce)
		b.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join("testdata", name+".log"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
