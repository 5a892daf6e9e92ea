package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// A console writing to buffers is the console of a command whose output
// goes to a log: no terminal anywhere.
func plainConsole() (*console, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return newConsole(&stdout, &stderr, false), &stdout, &stderr
}

func TestUploadWithoutTerminalPrintsALineEveryTenPercent(t *testing.T) {
	con, _, stderr := plainConsole()
	report, done := con.uploadMeter("shot.blend")
	const total = 2_700_000
	for sent := int64(0); sent <= total; sent += 27_000 { // 1 % at a time
		report(sent, total)
	}
	done()

	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 11 {
		t.Fatalf("got %d lines, want one per 10 %% from 0 to 100:\n%s", len(lines), stderr)
	}
	if want := "uploading shot.blend: 40% (1.1 MB of 2.7 MB)"; lines[4] != want {
		t.Errorf("line 5 = %q, want %q", lines[4], want)
	}
	if want := "uploading shot.blend: 100% (2.7 MB of 2.7 MB)"; lines[10] != want {
		t.Errorf("last line = %q, want %q", lines[10], want)
	}
}

func TestRenderWithoutTerminalPrintsALinePerChange(t *testing.T) {
	con, _, stderr := plainConsole()
	report, done := con.renderMeter()
	eta := func(s float64) *float64 { return &s }
	polls := []client.Progress{
		{Status: client.StatusBooting, FramesTotal: 24},
		{Status: client.StatusRendering, FramesTotal: 24},
		{Status: client.StatusRendering, FramesTotal: 24}, // nothing new
		{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 12, EtaSeconds: eta(8.2)},
		{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 12, EtaSeconds: eta(8.2)},
		{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 12, EtaSeconds: eta(8.2), WaitingFor: "the bucket"},
		{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 23, FramesFailed: 1, EtaSeconds: eta(0.4)},
		{Status: client.StatusFailed, FramesTotal: 24, FramesCompleted: 23, FramesFailed: 1},
	}
	for i := range polls {
		report(&polls[i])
	}
	done()

	want := "booting: 0/24 frames\n" +
		"rendering: 0/24 frames\n" +
		"rendering: 12/24 frames, eta 8s\n" +
		"rendering: 12/24 frames, eta 8s, waiting for the bucket\n" +
		"rendering: 23/24 frames, 1 failed, eta 0s\n" +
		"failed: 23/24 frames, 1 failed\n"
	if stderr.String() != want {
		t.Errorf("got\n%s\nwant\n%s", stderr, want)
	}
}

func TestWarningsStandOutWithoutEscapeCodes(t *testing.T) {
	con, stdout, _ := plainConsole()
	con.warn("MISSING_FILE", "image \"wood\" refers to //textures/wood.png, which is not in the upload")
	if got, want := stdout.String(), "WARNING MISSING_FILE: image \"wood\" refers to //textures/wood.png, which is not in the upload\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJSONKeepsStdoutForTheResult(t *testing.T) {
	var stdout, stderr bytes.Buffer
	con := newConsole(&stdout, &stderr, true)
	con.printf("job %s: validated\n", "42")
	if err := con.result(map[string]string{"id": "42"}); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "{\n  \"id\": \"42\"\n}\n" {
		t.Errorf("stdout = %q, want only the JSON", got)
	}
	if got := stderr.String(); got != "job 42: validated\n" {
		t.Errorf("stderr = %q, want the report", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 98_341: "98.3 kB",
		1_234_567: "1.2 MB", 999_999: "1.0 MB", 5 << 30: "5.4 GB", 3e15: "3000.0 TB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatSeconds(t *testing.T) {
	for s, want := range map[float64]string{
		0: "0s", 8.4: "8s", 59.6: "1m00s", 125: "2m05s", 5400: "1h30m", -3: "0s",
	} {
		if got := formatSeconds(s); got != want {
			t.Errorf("formatSeconds(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestEscapeTextMakesTerminalControlsVisible(t *testing.T) {
	for in, want := range map[string]string{
		"shot010":                        "shot010",
		"Sc\x1b]0;PWNED\x07\x1b[2J":      `Sc\x1b]0;PWNED\a\x1b[2J`,
		"line\r\nforged":                 `line\r\nforged`,
		"nul\x00 tab\t del\x7f":          `nul\x00 tab\t del\x7f`,
		"csi \u009b2J":                   `csi \u009b2J`, // C1, as a character
		"byte \x9b2J":                    `byte \x9b2J`,  // a byte that is not UTF-8
		"cam\u202eNOT":                   `cam\u202eNOT`,
		"iso\u2066late\u2069 mark\u200f": `iso\u2066late\u2069 mark\u200f`,
		"Café 日本 \ufffd":                 "Café 日本 \ufffd",
		`C:\Users\ana\shot.blend`:        `C:\Users\ana\shot.blend`,
	} {
		if got := escapeText(in); got != want {
			t.Errorf("escapeText(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEscapeLinesKeepsTheLines(t *testing.T) {
	got := escapeLines("no API key\x1b[2J\nTo create a key: renderfarm keys create\r")
	if want := "no API key\\x1b[2J\nTo create a key: renderfarm keys create\\r"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

type sceneName string

func (n sceneName) String() string { return "scene " + string(n) }

// The console's printf escapes what it prints of its arguments, whatever
// their type, and never its format: the command's own text.
func TestPrintfEscapesItsArguments(t *testing.T) {
	con, stdout, _ := plainConsole()
	con.printf("job %s: %s, %v, %s, %d frames, %-6s|\n", "j1", client.Status("done\x1b[2J"),
		errors.New("no\nforged"), sceneName("Sc\x07"), 3, "a\tb")
	con.printf("%q %s\n", "Cam\u202e", verbatim("kept"))
	want := "job j1: done\\x1b[2J, no\\nforged, scene Sc\\a, 3 frames, a\\tb  |\n" +
		"\"Cam\\u202e\" kept\n"
	if got := stdout.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWarningsAreEscaped(t *testing.T) {
	con, stdout, _ := plainConsole()
	con.warn("MISSING_FILE", "image \"wood\" refers to //tex\x1b[31m.png\nWARNING NONE: forged")
	want := "WARNING MISSING_FILE: image \"wood\" refers to //tex\\x1b[31m.png\\nWARNING NONE: forged\n"
	if got := stdout.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A name in --json output is the same string to a JSON reader, but no
// character of it can drive a terminal the output is shown on.
func TestJSONResultEscapesWhatJSONLeavesRaw(t *testing.T) {
	var stdout, stderr bytes.Buffer
	con := newConsole(&stdout, &stderr, true)
	name := "Sc\x1b]0;x\x07 \x7f \u009b \u202e é"
	if err := con.result(map[string]string{"scene": name}); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"scene\": \"Sc\\u001b]0;x\\u0007 \\u007f \\u009b \\u202e é\"\n}\n"
	if got := stdout.String(); got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(stdout.Bytes(), &back); err != nil || back["scene"] != name {
		t.Errorf("read back %q (%v), want %q", back["scene"], err, name)
	}
}

func TestStatusPrintsTheFarmsTextEscaped(t *testing.T) {
	con, stdout, _ := plainConsole()
	job := &client.Job{ID: "j1", Status: client.StatusFailed,
		FinalConfig: &client.FinalConfig{FrameRanges: []string{"1-2"}, FrameCount: 2, Scene: "Sc\x1b[2J", RenderEngine: "CYCLES", OutputFormat: "PNG"},
		FailedReason: &client.FailedReason{Name: "BLENDER_CRASHED", Type: "render",
			Message: "Blender said: \x1b]52;c;cm0gLXJmIH4=\x07\njob j1: completed"},
	}
	printJob(con, job, &client.Progress{Status: "failed\x1b[2J", FramesTotal: 2, FramesCompleted: 1, WaitingFor: "the\nbucket"})
	out := stdout.String()
	for _, want := range []string{
		"  render    frames 1-2 (2) of scene Sc\\x1b[2J, CYCLES, 0 samples, PNG\n",
		"  progress  1/2 frames, waiting for the\\nbucket\n",
		"  failed    BLENDER_CRASHED (render): Blender said: \\x1b]52;c;cm0gLXJmIH4=\\a\\njob j1: completed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}

	err := outcome(job)
	var buf bytes.Buffer
	printError(&buf, "status", err)
	if got, want := buf.String(), "renderfarm status: job j1 failed during render: BLENDER_CRASHED: Blender said: \\x1b]52;c;cm0gLXJmIH4=\\a\\njob j1: completed\n"; got != want {
		t.Errorf("the error is\n%q\nwant\n%q", got, want)
	}
}

// An error of the command keeps its lines; the farm's answer in it is
// escaped whole, its newlines too.
func TestErrorsKeepTheirLinesButNotTheFarms(t *testing.T) {
	apiErr := &client.APIError{StatusCode: 400, Code: "INVALID_STATE", Message: "scene \x1b[2J\nrenderfarm submit: ok"}
	r := remote{server: "http://farm"}
	err := r.explain(fmt.Errorf("%w\nJob j1 stays validated and will not render", apiErr))
	var buf bytes.Buffer
	printError(&buf, "submit", err)
	want := "renderfarm submit: 400 INVALID_STATE: scene \\x1b[2J\\nrenderfarm submit: ok\nJob j1 stays validated and will not render\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if !errors.As(err, &apiErr) {
		t.Error("the explained error no longer wraps the API's")
	}
}
