package main

import (
	"bytes"
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
