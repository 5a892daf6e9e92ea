package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestParseArgsTakesFlagsBeforeAndAfterArguments(t *testing.T) {
	for _, args := range [][]string{
		{"scene.blend", "--frames", "1-3", "--wait"},
		{"--frames", "1-3", "scene.blend", "--wait"},
		{"--wait", "--frames=1-3", "scene.blend"},
		{"--frames", "1-3", "--wait", "--", "scene.blend"},
	} {
		fs := flag.NewFlagSet("submit", flag.ContinueOnError)
		frames := fs.String("frames", "", "")
		wait := fs.Bool("wait", false, "")
		pos, err := parseArgs(fs, args, 1, 1, "give one FILE")
		if err != nil || !slices.Equal(pos, []string{"scene.blend"}) || *frames != "1-3" || !*wait {
			t.Errorf("parseArgs(%q) = %q, %v with frames=%q wait=%v", args, pos, err, *frames, *wait)
		}
	}
}

func TestParseArgsCountsArguments(t *testing.T) {
	fs := flag.NewFlagSet("download", flag.ContinueOnError)
	_, err := parseArgs(fs, []string{"job-1"}, 2, 2, "give the JOB id and the DIR")
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "give the JOB id and the DIR") {
		t.Errorf("err = %v, want a usage error naming the arguments", err)
	}
}

func TestRunExitsWith2AndGuidanceWhenTheKeyIsMissing(t *testing.T) {
	t.Setenv("RENDERFARM_API_KEY", "")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"jobs", "--server", "http://127.0.0.1:9"}, &stdout, &stderr)
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	want := "renderfarm jobs: no API key: pass --api-key KEY or set RENDERFARM_API_KEY.\n" +
		"To create a key, run on the farm's machine: renderfarm keys create --workspace NAME\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stderr = %q, want %q (and nothing on stdout)", stderr.String(), want)
	}
}

func TestLocalNameKeepsDownloadsInTheFolder(t *testing.T) {
	var got []string
	for _, remote := range []string{"frame_0001.png", "../../etc/passwd", `..\..\evil.png`, ".hidden", "", "/", "CON.png", "shot 1é.png"} {
		got = append(got, localName(remote))
	}
	want := []string{"frame_0001.png", "passwd", "evil.png", "_hidden", "file", "file", "CON_.png", "shot_1_.png"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
