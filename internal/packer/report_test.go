package packer

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/report.json is a report packer.py wrote for a shot linking a
// library through a library, packed with Blender 4.3 and with its project
// folder above the shot, with a missing and a refused file added.
func TestParseReport(t *testing.T) {
	body, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := parseReport(body)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blend != "shot.blend" || len(rep.Files) != 5 || rep.Files[0].ZipPath != "shot.blend" || !rep.Files[0].Rewritten {
		t.Errorf("report = %+v", rep.Report)
	}
	if rep.TotalBytes != 468756+453480+73+437036+1200 {
		t.Errorf("totalBytes = %d", rep.TotalBytes)
	}
	if len(rep.Missing) != 1 || rep.Missing[0].Path != "//tex/wood.png" || rep.Missing[0].Resolved == "" {
		t.Errorf("missing = %+v", rep.Missing)
	}
	if len(rep.Refused) != 1 || !strings.Contains(rep.Refused[0].Reason, "hidden") {
		t.Errorf("refused = %+v", rep.Refused)
	}
	var outside []string
	for _, f := range rep.OutsideFiles() {
		outside = append(outside, f.Source)
	}
	if !slices.Equal(outside, []string{"/mnt/library/hdri/sky.exr"}) {
		t.Errorf("outside files = %q", outside)
	}
	if rep.OnlyTheBlend() {
		t.Error("OnlyTheBlend on a report of five files")
	}
	// The shot was saved by 3.4 and rewritten by 4.3: a farm on 3.4
	// cannot open the copy. The libraries went in as they were.
	w := rep.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "shot.blend was saved with Blender 3.4") || !strings.Contains(w[0], "Blender 4.3 or newer") {
		t.Errorf("warnings = %q", w)
	}
}

func TestParseReportRefuses(t *testing.T) {
	for _, body := range []string{
		``,
		`{`,
		`[]`,
		`{"blend": "shot.blend", "files": []}`,
		`{"blend": "shot.blend", "files": [{"zipPath": "tex/a.png"}, {"zipPath": "shot.blend"}]}`,
		`{"blend": "", "files": [{"zipPath": "shot.blend"}]}`,
	} {
		if rep, err := parseReport([]byte(body)); err == nil {
			t.Errorf("parseReport(%q) = %+v, want an error", body, rep)
		}
	}
	rep, err := parseReport([]byte(`{"error": "the project uses more than 10000 files"}`))
	if err != nil || rep.Error != "the project uses more than 10000 files" {
		t.Errorf("a report of a failure = %+v, %v", rep, err)
	}
}

func TestOnlyTheBlend(t *testing.T) {
	for _, tc := range []struct {
		files []File
		want  bool
	}{
		{[]File{{ZipPath: "shot.blend"}}, true},
		{[]File{{ZipPath: "shot.blend", Rewritten: true}}, false},
		{[]File{{ZipPath: "shot.blend"}, {ZipPath: "tex/a.png"}}, false},
	} {
		if got := (&Report{Files: tc.files}).OnlyTheBlend(); got != tc.want {
			t.Errorf("OnlyTheBlend(%+v) = %v", tc.files, got)
		}
	}
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"4.3", "3.4", true}, {"3.4", "4.3", false}, {"3.4", "3.4", false},
		{"3.10", "3.9", true}, {"4.3.2", "4.2", true}, {"x", "3.4", false}, {"4.3", "", false},
	} {
		if got := newer(tc.a, tc.b); got != tc.want {
			t.Errorf("newer(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
	if got := majorMinor("3.4.1"); got != "3.4" {
		t.Errorf("majorMinor(3.4.1) = %q", got)
	}
}
