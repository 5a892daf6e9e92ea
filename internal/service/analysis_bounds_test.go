package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// hostileInspection is what a hostile file's inspection could say, c
// making up its names: a thousand scenes, five thousand missing files and
// libraries, names and paths past every bound.
func hostileInspection(c string, files int) farm.Inspection {
	name, path := strings.Repeat(c, 2*farm.MaxAnalysisNameBytes), strings.Repeat(c, 2*farm.MaxAnalysisPathBytes)
	in := farm.Inspection{FileVersion: "4.3", BlenderVersion: "4.3.2", ActiveScene: "Scene"}
	for i := range 1000 {
		in.Scenes = append(in.Scenes, farm.Scene{Name: fmt.Sprintf("Scene%s%d", strings.Repeat(c, 200), i), FrameStart: 1, FrameEnd: 10,
			Engine: "CYCLES", Camera: name, OutputPath: path, ViewLayers: []string{name, name, name},
			RenderPasses: []farm.ViewLayerPasses{{ViewLayer: name, Passes: []string{name, name}}}})
	}
	in.Scenes[0].Name = "Scene"
	for range files {
		in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: "image", Name: name, Path: path, Missing: true})
		in.Libraries = append(in.Libraries, farm.Library{Name: name, Path: path, Missing: true})
	}
	return in
}

// TestAPageOfWorstCaseJobsIsBounded lists a page of the largest jobs
// there can be (each with an analysis of a hostile file, and one stored
// unbounded before analyses had bounds), as GET /jobs does, and checks its
// JSON against MaxPageSize analyses of MaxAnalysisBytes.
func TestAPageOfWorstCaseJobsIsBounded(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		bounded := farm.AnalyzeInspection(hostileInspection("\x01", 5000))
		for i := range farm.MaxPageSize {
			job := f.Job(f.CreatedJob(f.api).ID)
			id := "analysis-" + job.ID
			job.Status, job.Analysis, job.AnalysisID = farm.StatusValidated, bounded, &id
			if i == 0 {
				// Stored before analyses had bounds: 4.6 MB.
				job.Analysis = &farm.Analysis{Inspection: hostileInspection("a", 1000), Warnings: []farm.Warning{}}
			}
			if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
				t.Fatal(err)
			}
		}
		page, err := f.api.ListJobs(f.Ctx, f.P, farm.ListQuery{Page: 1, PageSize: farm.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) != farm.MaxPageSize {
			t.Fatalf("%d jobs listed", len(page.Jobs))
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for _, j := range page.Jobs {
			buf.Reset()
			if err := enc.Encode(j.Analysis); err != nil {
				t.Fatal(err)
			}
			if buf.Len() > farm.MaxAnalysisBytes {
				t.Errorf("job %s: an analysis of %d bytes, over %d", j.ID, buf.Len(), farm.MaxAnalysisBytes)
			}
		}
		buf.Reset()
		if err := enc.Encode(page); err != nil {
			t.Fatal(err)
		}
		// The rest of a job of this test is a few hundred bytes.
		limit := farm.MaxPageSize * (farm.MaxAnalysisBytes + 4<<10)
		t.Logf("a page of %d such jobs: %.1f MiB (bound %.1f MiB)", farm.MaxPageSize, float64(buf.Len())/(1<<20), float64(limit)/(1<<20))
		if buf.Len() > limit {
			t.Errorf("the page takes %d bytes, over %d", buf.Len(), limit)
		}
	})
}
