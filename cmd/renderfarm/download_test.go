package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// fakeDownloads is a farm that answers GET /jobs/j/downloads with the
// next of its listings (the last one again once they run out) and serves
// each file's body at /files/NAME.
type fakeDownloads struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	listings []client.Downloads
	bodies   map[string]string
}

func newFakeDownloads(t *testing.T, bodies map[string]string, listings ...client.Downloads) *fakeDownloads {
	t.Helper()
	f := &fakeDownloads{t: t, listings: listings, bodies: bodies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDownloads) serve(w http.ResponseWriter, r *http.Request) {
	if name, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok {
		body, ok := f.bodies[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, body)
		return
	}
	if r.URL.Path != client.APIPath+"/jobs/j/downloads" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	d := f.listings[0]
	if len(f.listings) > 1 {
		f.listings = f.listings[1:]
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(d); err != nil {
		f.t.Error(err)
	}
}

// url is where the fake farm serves the file called name.
func (f *fakeDownloads) url(name string) string { return f.srv.URL + "/files/" + name }

// fetch runs one `renderfarm download j DIR` against the fake farm.
func (f *fakeDownloads) fetch(dir string) (*fetchReport, error) {
	return fetchOutputs(context.Background(), client.New(f.srv.URL, "RF-key"), newConsole(io.Discard, io.Discard, false), "j", dir)
}

// filesHolding lists the files below dir whose content is body.
func filesHolding(t *testing.T, dir, body string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && string(b) == body {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func frameNumber(n int) *int { return &n }

// TestDownloadAgainNeverTakesOneFrameForAnother: a farm (one from before
// frames' names were made unique) names frames 1 and 2 alike, as it did a
// name cut short. The first download, run while only frame 2 was done,
// saved frame 2 under that name; the second, once frame 1 is done too,
// must not take that file for frame 1 because it has frame 1's size: each
// frame is saved under the name with its frame number added, and both end
// up on disk. A farm that gives no frame numbers has each saved with what
// its URL names instead.
func TestDownloadAgainNeverTakesOneFrameForAnother(t *testing.T) {
	name := strings.Repeat("a", 118) + "_0"
	for _, numbered := range []bool{true, false} {
		var f *fakeDownloads
		frame := func(n int, file string) client.FileOutput {
			out := client.FileOutput{URL: f.url(file), FileName: name, RelativePath: "render/" + name, SizeBytes: 10}
			if numbered {
				out.Frame = frameNumber(n)
			}
			return out
		}
		f = newFakeDownloads(t, map[string]string{"one": "FRAME-ONE-", "two": "FRAME-TWO-"}, client.Downloads{}, client.Downloads{})
		f.listings[0].FrameOutputs = []client.FileOutput{frame(2, "two")}
		f.listings[1].FrameOutputs = []client.FileOutput{frame(1, "one"), frame(2, "two")}

		dir := t.TempDir()
		var report *fetchReport
		for range 2 {
			var err error
			if report, err = f.fetch(dir); err != nil {
				t.Fatal(err)
			}
		}
		one, two := filesHolding(t, dir, "FRAME-ONE-"), filesHolding(t, dir, "FRAME-TWO-")
		if len(one) != 1 || !slices.Contains(two, name) || len(two) != 2 {
			t.Errorf("frame numbers given %v: frame 1 is in %q, frame 2 in %q; want frame 1 in one file, frame 2 in its own and the first download's %s", numbered, one, two, name)
		}
		if numbered && (one[0] != name+".frame1" || !slices.Contains(two, name+".frame2")) {
			t.Errorf("frames are saved as %q and %q; want the farm's name with the frame's number", one, two)
		}
		if len(report.Warnings) != 1 || !strings.Contains(report.Warnings[0], "from an earlier download may be any of them") {
			t.Errorf("warnings %q; want one saying the earlier file is either frame", report.Warnings)
		}
	}
}

// TestDownloadNamesAlikeButForCase: on macOS and Windows, names that
// differ only in case are one file; so the images of views whose
// suffixes differ only in case (as a farm that did not tell them apart
// named them) are each saved by frame and view, and those of nodes whose
// names differ only in case, whose frame and view are alike, by the
// object each is; nothing is written twice.
func TestDownloadNamesAlikeButForCase(t *testing.T) {
	left, right := "left", "right"
	var f *fakeDownloads
	file := func(name, body string, view *string) client.FileOutput {
		return client.FileOutput{URL: f.url(body), FileName: name, RelativePath: name, SizeBytes: int64(len(body)), Frame: frameNumber(1), View: view}
	}
	f = newFakeDownloads(t, map[string]string{"L": "L", "R": "R", "pass": "pass", "Pass": "Pass", "ao": "ao"}, client.Downloads{})
	f.listings[0].FrameOutputs = []client.FileOutput{file("frame_0001_L.png", "L", &left), file("frame_0001_l.png", "R", &right)}
	f.listings[0].CompositeNodeOutputs = []client.FileOutput{file("Pass/img_0001.png", "Pass", nil), file("pass/img_0001.png", "pass", nil), file("AO/ao_0001.png", "ao", nil)}
	dir := t.TempDir()
	if _, err := f.fetch(dir); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]*regexp.Regexp{
		"L": regexp.MustCompile(`^frame_0001_L\.frame1\.left\.png$`), "R": regexp.MustCompile(`^frame_0001_l\.frame1\.right\.png$`),
		"Pass": regexp.MustCompile(`^compositeNodes/Pass/img_0001\.frame1\.file[0-9a-f]{8}\.png$`),
		"pass": regexp.MustCompile(`^compositeNodes/pass/img_0001\.frame1\.file[0-9a-f]{8}\.png$`),
		"ao":   regexp.MustCompile(`^compositeNodes/AO/ao_0001\.png$`),
	} {
		if got := filesHolding(t, dir, body); len(got) != 1 || !want.MatchString(got[0]) {
			t.Errorf("%s is in %q, want a file named as %s", body, got, want)
		}
	}
}

// TestDownloadOfAFrameNamedAsTheVideo: a farm that named a frame as the
// job's preview video (//preview.mp# without extensions, frame 4) has both
// saved, the frame by its number; a frame listed twice is saved once.
func TestDownloadOfAFrameNamedAsTheVideo(t *testing.T) {
	f := newFakeDownloads(t, map[string]string{"4": "frame four", "video": "the video"}, client.Downloads{}, client.Downloads{})
	frame4 := client.FileOutput{URL: f.url("4"), FileName: "preview.mp4", RelativePath: "preview.mp4", SizeBytes: 10, Frame: frameNumber(4)}
	video := &client.VideoOutput{URL: f.url("video"), FileName: "preview.mp4", SizeBytes: 9}
	f.listings[0].FrameOutputs, f.listings[0].Transforms.Video = []client.FileOutput{frame4}, video
	f.listings[1].FrameOutputs = []client.FileOutput{frame4, frame4}

	dir := t.TempDir()
	if _, err := f.fetch(dir); err != nil {
		t.Fatal(err)
	}
	if got := filesHolding(t, dir, "frame four"); !slices.Equal(got, []string{"preview.frame4.mp4"}) {
		t.Errorf("frame 4 is in %q", got)
	}
	if got := filesHolding(t, dir, "the video"); len(got) != 1 || !regexp.MustCompile(`^preview\.file[0-9a-f]{8}\.mp4$`).MatchString(got[0]) {
		t.Errorf("the video is in %q", got)
	}

	report, err := f.fetch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Files) != 1 || !slices.ContainsFunc(report.Warnings, func(w string) bool { return strings.Contains(w, "frame 4's image twice") }) {
		t.Errorf("report %+v; want one file and a warning that frame 4 is listed twice", report)
	}
}
