package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

const testKey = "RJ-test-key"

// jobJSON is a job as the server sends it, with every optional part filled,
// so that decoding is checked field by field.
const jobJSON = `{
  "id": "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10",
  "status": "failed",
  "workspaceId": "ws-1",
  "userId": "key-1",
  "createdAt": "2025-03-01T10:00:00Z",
  "updatedAt": "2025-03-01T10:05:30Z",
  "rootFolderId": null,
  "normalizedSeconds": 12.5,
  "previewUrl": "http://farm/preview.mp4?sig=x",
  "failedReason": {"name": "Frame failed", "type": "render", "message": "frame 7: out of memory"},
  "requestedConfig": {"colorManagementPreset": "default", "frameRanges": ["1-24"], "sampleCount": 32},
  "finalConfig": {
    "scene": "Scene", "frameRanges": ["1-24"], "frameCount": 24,
    "colorManagementPreset": "default", "renderEngine": "CYCLES",
    "computeDeviceType": "CPU", "compositorDevice": "CPU", "sampleCount": 32,
    "denoisingEnabled": false, "resolution": [320, 180], "resolutionPercentage": 100,
    "outputFormat": "PNG", "fps": 24, "outputSettings": {"colorMode": "RGBA", "compression": 15},
    "chunkSize": 24
  },
  "output": {"isDeletedForClient": false},
  "isAnalysisSkipped": false,
  "analysisId": "an-1",
  "analysis": {
    "fileVersion": "3.4", "blenderVersion": "3.4.1", "denoiserAvailable": false,
    "viewTransforms": ["Standard", "Filmic"], "activeScene": "Scene",
    "scenes": [{"name": "Scene", "frameStart": 1, "frameEnd": 24, "frameStep": 1, "fps": 24,
                "resolutionX": 320, "resolutionY": 180, "resolutionPercentage": 100,
                "engine": "CYCLES", "samples": 16, "camera": "Camera", "outputFormat": "PNG",
                "colorMode": "RGBA", "colorDepth": "8", "denoisingEnabled": true,
                "denoiser": "OPENIMAGEDENOISE", "useCompositing": false, "viewLayers": ["ViewLayer"],
                "viewTransform": "Filmic", "isMovieOutput": false}],
    "externalFiles": [{"type": "image", "name": "wood.png", "path": "//tex/wood.png", "missing": true, "packed": false}],
    "warnings": [{"code": "DENOISER_UNAVAILABLE", "message": "denoising will be off"}]
  },
  "sceneFile": {"fileName": "shot.blend", "fileType": "blend", "sizeBytes": 1234, "sha256": "ab",
                "blendPath": "shot.blend", "compression": "zstd", "version": "3.4"},
  "slug": "slug-1"
}`

// fakeServer is the server side of the HTTP exchange, per the wire
// contract, with just enough behaviour for each test to set what it needs.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server
	mux *http.ServeMux

	mu       sync.Mutex
	requests []*http.Request // every request, with headers, as received
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, mux: http.NewServeMux()}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(context.Background()))
		f.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, client.APIPath+"/") && r.Header.Get("Authorization") != "Bearer "+testKey {
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "missing or unknown API key", "")
			return
		}
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// handle registers an API route, such as "GET /jobs/{id}".
func (f *fakeServer) handle(pattern string, h http.HandlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	f.mux.HandleFunc(method+" "+client.APIPath+path, h)
}

// handleRaw registers a route outside the API, such as a presigned URL.
func (f *fakeServer) handleRaw(pattern string, h http.HandlerFunc) {
	f.mux.HandleFunc(pattern, h)
}

func (f *fakeServer) client(opts ...client.Option) *client.Client {
	return client.New(f.srv.URL, testKey, opts...)
}

func (f *fakeServer) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		f.t.Fatal("no request reached the server")
	}
	return f.requests[len(f.requests)-1]
}

func (f *fakeServer) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func writeError(w http.ResponseWriter, status int, code, message, field string) {
	e := map[string]string{"code": code, "message": message}
	if field != "" {
		e["field"] = field
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	writeJSON(w, status, string(b))
}

func jobWithStatus(id string, s client.Status) string {
	return fmt.Sprintf(`{"id": %q, "status": %q, "workspaceId": "ws-1"}`, id, s)
}

func TestRequestsCarryBearerKeyAndUserAgent(t *testing.T) {
	f := newFakeServer(t)
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"data": `+jobWithStatus(r.PathValue("id"), client.StatusCreated)+`}`)
	})
	c := f.client(client.WithUserAgent("pipeline/1.0"))
	if _, err := c.GetJob(context.Background(), "j1"); err != nil {
		t.Fatal(err)
	}
	r := f.lastRequest()
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization = %q, want Bearer key", got)
	}
	if got := r.Header.Get("User-Agent"); got != "pipeline/1.0" {
		t.Errorf("User-Agent = %q", got)
	}
	if r.URL.Path != "/api/external/v1/jobs/j1" {
		t.Errorf("path = %q", r.URL.Path)
	}
}

func TestWrongKeyIsUnauthorized(t *testing.T) {
	f := newFakeServer(t)
	c := client.New(f.srv.URL, "RJ-wrong")
	_, err := c.GetJob(context.Background(), "j1")
	if !client.IsUnauthorized(err) {
		t.Fatalf("err = %v, want unauthorized", err)
	}
	if !strings.HasPrefix(err.Error(), "get job j1: 401 UNAUTHORIZED: ") {
		t.Errorf("message = %q", err)
	}
}

func TestBaseURLForms(t *testing.T) {
	f := newFakeServer(t)
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"data": `+jobWithStatus(r.PathValue("id"), client.StatusCreated)+`}`)
	})
	for _, base := range []string{f.srv.URL, f.srv.URL + "/", f.srv.URL + "/api/external/v1", f.srv.URL + "/api/external/v1/"} {
		c := client.New(base, testKey)
		if _, err := c.GetJob(context.Background(), "j1"); err != nil {
			t.Errorf("base %q: %v", base, err)
		}
	}
}

func TestGetJobUnwrapsDataAndDecodesEveryPart(t *testing.T) {
	f := newFakeServer(t)
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"data": `+jobJSON+`}`)
	})
	job, err := f.client().GetJob(context.Background(), "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10")
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10" || job.Status != client.StatusFailed || job.Slug != "slug-1" {
		t.Errorf("job = %+v", job)
	}
	if want := time.Date(2025, 3, 1, 10, 5, 30, 0, time.UTC); !job.UpdatedAt.Equal(want) {
		t.Errorf("UpdatedAt = %v", job.UpdatedAt)
	}
	if job.RootFolderID != nil || job.PreviewURL == nil || job.AnalysisID == nil || *job.AnalysisID != "an-1" {
		t.Errorf("nullable fields: root %v preview %v analysisId %v", job.RootFolderID, job.PreviewURL, job.AnalysisID)
	}
	if r := job.FailedReason; r == nil || r.Type != client.FailRender || r.Message != "frame 7: out of memory" {
		t.Errorf("FailedReason = %+v", r)
	}
	if rc := job.RequestedConfig; rc == nil || *rc.SampleCount != 32 || rc.RenderEngine != nil {
		t.Errorf("RequestedConfig = %+v", rc)
	}
	fc := job.FinalConfig
	if fc == nil || fc.FrameCount != 24 || fc.Resolution[0] != 320 || fc.OutputSettings.ColorMode != "RGBA" || *fc.OutputSettings.Compression != 15 {
		t.Errorf("FinalConfig = %+v", fc)
	}
	a := job.Analysis
	if a == nil || a.BlenderVersion != "3.4.1" || len(a.Scenes) != 1 || a.Scenes[0].FrameEnd != 24 || a.Scenes[0].ResolutionY != 180 {
		t.Fatalf("Analysis = %+v", a)
	}
	if len(a.Warnings) != 1 || a.Warnings[0].Code != client.WarnDenoiserUnavailable {
		t.Errorf("Warnings = %+v", a.Warnings)
	}
	if sc := a.Scenes[0]; sc.Camera != "Camera" || sc.Denoiser != "OPENIMAGEDENOISE" || sc.ViewLayers[0] != "ViewLayer" {
		t.Errorf("Scene = %+v", sc)
	}
	if len(a.ExternalFiles) != 1 || !a.ExternalFiles[0].Missing || a.ExternalFiles[0].Path != "//tex/wood.png" {
		t.Errorf("ExternalFiles = %+v", a.ExternalFiles)
	}
	if sf := job.SceneFile; sf == nil || sf.FileType != client.FileTypeBlend || sf.SizeBytes != 1234 || sf.Compression != "zstd" {
		t.Errorf("SceneFile = %+v", sf)
	}
}

func TestGetJobWithoutWrapperIsAnError(t *testing.T) {
	f := newFakeServer(t)
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, jobWithStatus("j1", client.StatusCreated))
	})
	if _, err := f.client().GetJob(context.Background(), "j1"); err == nil {
		t.Fatal("a bare job where {\"data\": …} was due decoded silently")
	}
}

func TestEmptyJobIDIsRefusedBeforeSending(t *testing.T) {
	f := newFakeServer(t)
	c := f.client()
	ctx := context.Background()
	if _, err := c.GetJob(ctx, ""); err == nil {
		t.Error("GetJob(\"\") succeeded")
	}
	if _, err := c.Validate(ctx, ""); err == nil {
		t.Error("Validate(\"\") succeeded")
	}
	if _, _, err := c.Render(ctx, "", client.RenderConfig{}); err == nil {
		t.Error("Render(\"\") succeeded")
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

func TestCreateJobSendsSlugAndReadsBareJob(t *testing.T) {
	f := newFakeServer(t)
	var body map[string]any
	f.handle("POST /jobs", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		writeJSON(w, 201, jobWithStatus("j1", client.StatusCreated))
	})
	job, err := f.client().CreateJob(context.Background(), "slug-1")
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "j1" || job.Status != client.StatusCreated {
		t.Errorf("job = %+v", job)
	}
	if len(body) != 1 || body["slug"] != "slug-1" {
		t.Errorf("body = %v, want only the slug", body)
	}
}

func TestListJobsSendsQueryAndReadsPage(t *testing.T) {
	f := newFakeServer(t)
	f.handle("GET /jobs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"jobs": [`+jobWithStatus("a", client.StatusRendering)+`,`+jobWithStatus("b", client.StatusRendering)+`],
			"pagination": {"page": 2, "pageSize": 2, "total": 5, "totalPages": 3}}`)
	})
	c := f.client()
	list, err := c.ListJobs(context.Background(), client.ListOptions{Page: 2, PageSize: 2, Status: client.StatusRendering})
	if err != nil {
		t.Fatal(err)
	}
	q := f.lastRequest().URL.Query()
	if q.Get("page") != "2" || q.Get("pageSize") != "2" || q.Get("status") != "rendering" {
		t.Errorf("query = %v", q)
	}
	if len(list.Jobs) != 2 || list.Jobs[1].ID != "b" || list.Pagination.TotalPages != 3 {
		t.Errorf("list = %+v", list)
	}

	if _, err := c.ListJobs(context.Background(), client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw := f.lastRequest().URL.RawQuery; raw != "" {
		t.Errorf("zero options sent query %q", raw)
	}
}

func TestRenderSendsConfigAndReadsReplay(t *testing.T) {
	f := newFakeServer(t)
	var bodies []string
	f.handle("POST /jobs/{id}/render", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if len(bodies) > 1 {
			w.Header().Set("X-Idempotent-Replay", "true")
			writeJSON(w, 200, jobWithStatus(r.PathValue("id"), client.StatusRendering))
			return
		}
		writeJSON(w, 200, jobWithStatus(r.PathValue("id"), client.StatusBooting))
	})
	c := f.client()
	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1-24"},
		SampleCount:           client.Int(32),
		DenoisingEnabled:      client.Bool(false),
	}
	job, replay, err := c.Render(context.Background(), "j1", cfg)
	if err != nil || replay || job.Status != client.StatusBooting {
		t.Fatalf("first render: job %+v replay %v err %v", job, replay, err)
	}
	job, replay, err = c.Render(context.Background(), "j1", cfg)
	if err != nil || !replay || job.Status != client.StatusRendering {
		t.Fatalf("second render: job %+v replay %v err %v", job, replay, err)
	}
	// Fields left nil are left out, so the server falls back to the file;
	// a false that was set is sent.
	want := `{"requestedRenderConfig":{"colorManagementPreset":"default","frameRanges":["1-24"],"sampleCount":32,"denoisingEnabled":false}}`
	if bodies[0] != want {
		t.Errorf("body =\n%s\nwant\n%s", bodies[0], want)
	}
}

// ProgressCounts and RunningProgressCounts ask for the counters alone
// (frames=none); Progress and RunningProgress for every frame, as
// Renderjuice's clients do, with no parameter.
func TestProgressCountsAskForNoFrames(t *testing.T) {
	f := newFakeServer(t)
	var queries []string
	f.handle("GET /jobs/{id}/progress", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.URL.Query().Get("frames") == "none" {
			writeJSON(w, 200, `{"jobId": "j1", "status": "rendering", "framesTotal": 100000, "framesCompleted": 6, "percentComplete": 0, "etaSeconds": null}`)
			return
		}
		writeJSON(w, 200, `{"jobId": "j1", "status": "rendering", "framesTotal": 1, "framesCompleted": 0, "percentComplete": 0, "etaSeconds": null,
			"frames": [{"frame": 1, "status": "queued", "worker": "", "renderSeconds": 0, "attempts": 0}]}`)
	})
	f.handle("GET /jobs/progress", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		writeJSON(w, 200, `[]`)
	})
	c := f.client()
	ctx := context.Background()
	if p, err := c.ProgressCounts(ctx, "j1"); err != nil || p.FramesTotal != 100000 || len(p.Frames) != 0 {
		t.Errorf("ProgressCounts: %+v %v", p, err)
	}
	if p, err := c.Progress(ctx, "j1"); err != nil || len(p.Frames) != 1 {
		t.Errorf("Progress: %+v %v", p, err)
	}
	if list, err := c.RunningProgressCounts(ctx); err != nil || list == nil {
		t.Errorf("RunningProgressCounts: %#v %v", list, err)
	}
	if _, err := c.RunningProgress(ctx); err != nil {
		t.Error(err)
	}
	if want := []string{"frames=none", "", "frames=none", ""}; !slices.Equal(queries, want) {
		t.Errorf("queries sent %q, want %q", queries, want)
	}
}

// ProgressOfFrames and DownloadsOfFrames ask for a span of frames, and
// read the job's render seconds with the page of frames.
func TestASpanOfFramesIsAskedForAsASpan(t *testing.T) {
	f := newFakeServer(t)
	var queries []string
	f.handle("GET /jobs/{id}/progress", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		writeJSON(w, 200, `{"jobId": "j1", "status": "rendering", "framesTotal": 100000, "framesCompleted": 2, "percentComplete": 0, "etaSeconds": null, "renderSeconds": 12.5,
			"frames": [{"frame": 1001, "status": "completed", "worker": "a", "renderSeconds": 6, "attempts": 1}]}`)
	})
	f.handle("GET /jobs/{id}/downloads", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		writeJSON(w, 200, `{"frames": [], "compositeNodes": [], "frameOutputs": [], "compositeNodeOutputs": [], "transforms": {}}`)
	})
	c := f.client()
	ctx := context.Background()
	p, err := c.ProgressOfFrames(ctx, "j1", 1001, 2000)
	if err != nil || p.FramesTotal != 100000 || p.RenderSeconds != 12.5 || len(p.Frames) != 1 || p.Frames[0].Frame != 1001 {
		t.Errorf("ProgressOfFrames: %+v %v", p, err)
	}
	if _, err := c.DownloadsOfFrames(ctx, "j1", 7, 7); err != nil {
		t.Error(err)
	}
	if want := []string{"frames=1001-2000", "frames=7-7"}; !slices.Equal(queries, want) {
		t.Errorf("queries sent %q, want %q", queries, want)
	}
}

// A server that does not know a span of frames still answers one: one
// that ignores the parameter lists every frame and file, of which the
// client keeps the span's; one that refuses it (400, as renderfarm did
// before spans) is asked for the whole report, of which the client keeps
// the span's frames. A span the server would refuse anyway is refused
// without asking.
func TestASpanOfFramesFromAServerThatDoesNotKnowSpans(t *testing.T) {
	every := `{"jobId": "j1", "status": "rendering", "framesTotal": 4, "framesCompleted": 4, "percentComplete": 100, "etaSeconds": null, "frames": [
		{"frame": 1, "status": "completed", "worker": "a", "renderSeconds": 1, "attempts": 1},
		{"frame": 2, "status": "completed", "worker": "a", "renderSeconds": 1, "attempts": 1},
		{"frame": 3, "status": "completed", "worker": "a", "renderSeconds": 1, "attempts": 1},
		{"frame": 4, "status": "completed", "worker": "a", "renderSeconds": 1, "attempts": 1}]}`
	file := func(frame int) string {
		return fmt.Sprintf(`{"url": "https://x/%d.png", "fileName": "%d.png", "relativePath": "%d.png", "frame": %d}`, frame, frame, frame, frame)
	}
	files := `{"frames": ["https://x/1.png", "https://x/2.png", "https://x/3.png"], "compositeNodes": ["https://x/2.png"],
		"frameOutputs": [` + file(1) + `, ` + file(2) + `, ` + file(3) + `], "compositeNodeOutputs": [` + file(2) + `], "transforms": {}}`
	frameNumbers := func(p *client.Progress) []int {
		var out []int
		for _, f := range p.Frames {
			out = append(out, f.Frame)
		}
		return out
	}
	for _, refuses := range []bool{false, true} {
		f := newFakeServer(t)
		var queries []string
		f.handle("GET /jobs/{id}/progress", func(w http.ResponseWriter, r *http.Request) {
			queries = append(queries, r.URL.RawQuery)
			if refuses && r.URL.RawQuery != "" {
				writeError(w, 400, "INVALID_REQUEST", `frames must be all (every frame listed, the default) or none (their counts only), not "2-3"`, "frames")
				return
			}
			writeJSON(w, 200, every)
		})
		f.handle("GET /jobs/{id}/downloads", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, files) })
		c := f.client()
		ctx := context.Background()
		p, err := c.ProgressOfFrames(ctx, "j1", 2, 3)
		if err != nil || p.FramesTotal != 4 || !slices.Equal(frameNumbers(p), []int{2, 3}) {
			t.Errorf("refusing %v: ProgressOfFrames(2, 3) = %+v, %v; want frames 2 and 3 of the 4 counted", refuses, p, err)
		}
		want := []string{"frames=2-3"}
		if refuses {
			want = append(want, "")
		}
		if !slices.Equal(queries, want) {
			t.Errorf("refusing %v: queries sent %q, want %q", refuses, queries, want)
		}
		d, err := c.DownloadsOfFrames(ctx, "j1", 3, 3)
		if err != nil || len(d.FrameOutputs) != 1 || *d.FrameOutputs[0].Frame != 3 || !slices.Equal(d.Frames, []string{"https://x/3.png"}) ||
			len(d.CompositeNodeOutputs) != 0 || len(d.CompositeNodes) != 0 {
			t.Errorf("DownloadsOfFrames(3, 3) = %+v, %v; want frame 3's file alone", d, err)
		}
		// A server that does not number its files cannot be asked a span.
		files = `{"frames": ["https://x/1.png"], "compositeNodes": [], "frameOutputs": [{"url": "https://x/1.png", "fileName": "1.png", "relativePath": "1.png"}],
			"compositeNodeOutputs": [], "transforms": {}}`
		if d, err := c.DownloadsOfFrames(ctx, "j1", 3, 3); err == nil || !strings.Contains(err.Error(), "does not say which frame") {
			t.Errorf("DownloadsOfFrames from a server that does not number its files = %+v, %v; want an error saying so", d, err)
		}
		files = `{"frames": ["https://x/1.png", "https://x/2.png", "https://x/3.png"], "compositeNodes": ["https://x/2.png"],
		"frameOutputs": [` + file(1) + `, ` + file(2) + `, ` + file(3) + `], "compositeNodeOutputs": [` + file(2) + `], "transforms": {}}`
		for _, span := range [][2]int{{3, 2}, {-1, 5}, {0, 1048575}} {
			queries = nil
			if _, err := c.ProgressOfFrames(ctx, "j1", span[0], span[1]); err == nil || len(queries) != 0 {
				t.Errorf("ProgressOfFrames(%d, %d): %v, asked %q; want an error, the server not asked", span[0], span[1], err, queries)
			}
		}
	}
}

// A server that refuses frames=none (400) is asked for the whole report,
// so that Wait and the CLI's lines work against it too.
func TestProgressCountsFromAServerThatRefusesThemReadTheWholeReport(t *testing.T) {
	f := newFakeServer(t)
	var queries []string
	refuse := func(w http.ResponseWriter, r *http.Request) bool {
		queries = append(queries, r.URL.RawQuery)
		if r.URL.RawQuery != "" {
			writeJSON(w, 400, `{"error": {"code": "INVALID_REQUEST", "message": "unknown parameter frames"}}`)
			return true
		}
		return false
	}
	f.handle("GET /jobs/{id}/progress", func(w http.ResponseWriter, r *http.Request) {
		if !refuse(w, r) {
			writeJSON(w, 200, `{"jobId": "j1", "status": "rendering", "framesTotal": 1, "framesCompleted": 1, "percentComplete": 100, "etaSeconds": null,
				"frames": [{"frame": 1, "status": "completed", "worker": "w1", "renderSeconds": 1, "attempts": 1}]}`)
		}
	})
	f.handle("GET /jobs/progress", func(w http.ResponseWriter, r *http.Request) {
		if !refuse(w, r) {
			writeJSON(w, 200, `[]`)
		}
	})
	c := f.client()
	ctx := context.Background()
	if p, err := c.ProgressCounts(ctx, "j1"); err != nil || p.FramesCompleted != 1 || len(p.Frames) != 1 {
		t.Errorf("ProgressCounts: %+v %v; want the whole report", p, err)
	}
	if list, err := c.RunningProgressCounts(ctx); err != nil || list == nil {
		t.Errorf("RunningProgressCounts: %#v %v", list, err)
	}
	if want := []string{"frames=none", "", "frames=none", ""}; !slices.Equal(queries, want) {
		t.Errorf("queries sent %q, want %q", queries, want)
	}
}

func TestActionsUseTheirRoutes(t *testing.T) {
	f := newFakeServer(t)
	for action, status := range map[string]client.Status{"validate": client.StatusValidating, "cancel": client.StatusCanceled} {
		f.handle("POST /jobs/{id}/"+action, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, jobWithStatus(r.PathValue("id"), status))
		})
	}
	f.handle("GET /jobs/{id}/progress", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"jobId": "j1", "status": "rendering", "framesTotal": 24, "framesCompleted": 6,
			"percentComplete": 25, "etaSeconds": 9.5, "frames": [{"frame": 1, "status": "completed", "worker": "w1", "renderSeconds": 0.4, "attempts": 1}]}`)
	})
	f.handle("GET /jobs/progress", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `[]`)
	})
	f.handle("GET /jobs/{id}/downloads", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"frames": ["http://x/f1.png"], "compositeNodes": [],
			"transforms": {"framesZip": "http://x/frames.zip", "compositeNodesZip": null,
				"video": {"url": "http://x/p.mp4", "fileName": "preview.mp4", "codec": "h264", "fps": 24, "sizeBytes": 10},
				"framesZipOutputs": null, "compositeNodesZipOutputs": null},
			"frameOutputs": [{"url": "http://x/f1.png", "fileName": "frame_0001.png", "view": null, "legacy": false,
				"relativePath": "frames/frame_0001.png", "compositeNodeName": null, "frame": 1, "sizeBytes": 99}],
			"compositeNodeOutputs": []}`)
	})
	c := f.client()
	ctx := context.Background()

	job, err := c.Validate(ctx, "j1")
	if err != nil || job.Status != client.StatusValidating {
		t.Errorf("validate: %+v %v", job, err)
	}
	job, err = c.Cancel(ctx, "j1")
	if err != nil || job.Status != client.StatusCanceled {
		t.Errorf("cancel: %+v %v", job, err)
	}
	p, err := c.Progress(ctx, "j1")
	if err != nil || p.FramesCompleted != 6 || *p.EtaSeconds != 9.5 || p.Frames[0].Worker != "w1" {
		t.Errorf("progress: %+v %v", p, err)
	}
	running, err := c.RunningProgress(ctx)
	if err != nil || running == nil || len(running) != 0 {
		t.Errorf("running progress: %#v %v", running, err)
	}
	d, err := c.Downloads(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 1 || *d.FrameOutputs[0].Frame != 1 || d.FrameOutputs[0].SizeBytes != 99 ||
		*d.Transforms.FramesZip != "http://x/frames.zip" || d.Transforms.Video.Codec != "h264" {
		t.Errorf("downloads: %+v", d)
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	f := newFakeServer(t)
	f.handle("POST /jobs/{id}/validate", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 400, "INVALID_STATE", "cannot validate a job that is validated", "")
	})
	f.handle("POST /jobs/{id}/render", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 400, "INVALID_RENDER_CONFIG", "sampleCount: must be at least 1", "requestedRenderConfig.sampleCount")
	})
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "NOT_FOUND", `no job with id "nope" in this workspace`, "")
	})
	f.handle("POST /jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>\n  <body>upstream down</body>\n</html>")
	})
	c := f.client()
	ctx := context.Background()

	_, err := c.Validate(ctx, "j1")
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %T %v, want *APIError inside", err, err)
	}
	if ae.StatusCode != 400 || ae.Code != client.CodeInvalidState || ae.Message != "cannot validate a job that is validated" {
		t.Errorf("APIError = %+v", ae)
	}
	if got, want := err.Error(), "validate job j1: 400 INVALID_STATE: cannot validate a job that is validated"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !client.IsInvalidState(err) || client.IsNotFound(err) {
		t.Error("helpers misread an INVALID_STATE error")
	}

	_, _, err = c.Render(ctx, "j1", client.RenderConfig{ColorManagementPreset: client.String("default"), SampleCount: client.Int(0)})
	if !errors.As(err, &ae) || ae.Field != "requestedRenderConfig.sampleCount" || !client.HasCode(err, client.CodeInvalidConfig) {
		t.Errorf("render error = %v (%+v)", err, ae)
	}
	if got, want := err.Error(), "render job j1: 400 INVALID_RENDER_CONFIG: sampleCount: must be at least 1 (field requestedRenderConfig.sampleCount)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// A message that already names the whole field does not repeat it.
	named := &client.APIError{StatusCode: 400, Code: "INVALID_REQUEST", Message: "slug is required", Field: "slug"}
	if got, want := named.Error(), "400 INVALID_REQUEST: slug is required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	_, err = c.GetJob(ctx, "nope")
	if !client.IsNotFound(err) {
		t.Errorf("404 not recognised: %v", err)
	}

	_, err = c.Cancel(ctx, "j1")
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Code != "" {
		t.Fatalf("502 error = %v", err)
	}
	if got, want := err.Error(), "cancel job j1: 502 Bad Gateway: <html> <body>upstream down</body> </html>"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestUnreachableServerErrorNamesURL(t *testing.T) {
	// A port that was just listened on and closed refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	_ = ln.Close()

	_, err = client.New(base, testKey).CreateJob(context.Background(), "s")
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	if !strings.Contains(err.Error(), base+"/api/external/v1/jobs") || !strings.HasPrefix(err.Error(), "create job: ") {
		t.Errorf("error does not name the URL: %v", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("error shows the API key: %v", err)
	}
}

// onlyReader hides the concrete type of a reader, so that net/http cannot
// learn the length from it and Upload has to set it.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(b []byte) (int, error) { return o.r.Read(b) }

func TestUploadSendsPlainPutWithExactBytesAndReportsProgress(t *testing.T) {
	f := newFakeServer(t)
	var got []byte
	var gotHeader http.Header
	var gotLength int64
	f.handleRaw("PUT /objects/uploads/s1/scene.blend", func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Clone()
		gotLength = r.ContentLength
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
	})

	data := bytes.Repeat([]byte("BLENDER-v304"), 200_000) // 2.4 MB: many reads
	var mu sync.Mutex
	var reports [][2]int64
	progress := func(sent, total int64) {
		mu.Lock()
		reports = append(reports, [2]int64{sent, total})
		mu.Unlock()
	}
	url := f.srv.URL + "/objects/uploads/s1/scene.blend?expires=1&sig=abc"
	if err := f.client().Upload(context.Background(), url, onlyReader{bytes.NewReader(data)}, int64(len(data)), progress); err != nil {
		t.Fatal(err)
	}

	if !bytes.Equal(got, data) {
		t.Errorf("server got %d bytes, want the %d sent", len(got), len(data))
	}
	if gotLength != int64(len(data)) {
		t.Errorf("Content-Length = %d, want %d", gotLength, len(data))
	}
	for _, h := range []string{"Content-Type", "Authorization", "Transfer-Encoding", "Content-Md5", "X-Amz-Content-Sha256"} {
		if v := gotHeader.Get(h); v != "" {
			t.Errorf("PUT sent %s: %q", h, v)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(reports) < 2 {
		t.Fatalf("progress called %d times for %d bytes", len(reports), len(data))
	}
	for i, r := range reports {
		if r[1] != int64(len(data)) {
			t.Fatalf("report %d total = %d", i, r[1])
		}
		if i > 0 && r[0] <= reports[i-1][0] {
			t.Fatalf("progress went from %d to %d", reports[i-1][0], r[0])
		}
	}
	if last := reports[len(reports)-1]; last[0] != last[1] {
		t.Errorf("last report %d of %d", last[0], last[1])
	}
}

func TestUploadRefusalCarriesServerMessageAndHidesSignature(t *testing.T) {
	f := newFakeServer(t)
	f.handleRaw("PUT /objects/x", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeError(w, http.StatusForbidden, "SIGNATURE_EXPIRED", "the upload URL expired; ask for a new one", "")
	})
	err := f.client().Upload(context.Background(), f.srv.URL+"/objects/x?sig=SECRET", strings.NewReader("abc"), 3, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 403 || ae.Message != "the upload URL expired; ask for a new one" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error shows the URL's signature: %v", err)
	}
	if !strings.Contains(err.Error(), f.srv.URL+"/objects/x") {
		t.Errorf("error does not say where the upload went: %v", err)
	}
}

func TestUploadWithShortReaderFails(t *testing.T) {
	f := newFakeServer(t)
	f.handleRaw("PUT /objects/x", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	})
	err := f.client().Upload(context.Background(), f.srv.URL+"/objects/x", strings.NewReader("abc"), 10, nil)
	if err == nil {
		t.Fatal("3 bytes uploaded as 10 without an error")
	}
}

// uploadServer answers POST /uploads with a ticket to a PUT route of its
// own, and records what the client declared and sent.
type uploadServer struct {
	*fakeServer
	declared map[string]string
	received []byte
}

func newUploadServer(t *testing.T) *uploadServer {
	u := &uploadServer{fakeServer: newFakeServer(t)}
	u.handle("POST /uploads", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&u.declared)
		writeJSON(w, 200, fmt.Sprintf(`{"uploadUrl": "%s/objects/uploads/s1/%s?sig=x", "slug": "s1", "expiresAt": "2030-01-01T00:00:00Z"}`,
			u.srv.URL, u.declared["fileName"]))
	})
	u.handleRaw("PUT /objects/uploads/s1/{name}", func(w http.ResponseWriter, r *http.Request) {
		u.received, _ = io.ReadAll(r.Body)
	})
	return u
}

func TestUploadFilePicksFileTypeFromExtension(t *testing.T) {
	dir := t.TempDir()
	for name, wantType := range map[string]string{"shot.blend": "blend", "SHOT.BLEND": "blend", "project.zip": "zip"} {
		t.Run(name, func(t *testing.T) {
			u := newUploadServer(t)
			path := filepath.Join(dir, name)
			content := []byte("content of " + name)
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			slug, err := u.client().UploadFile(context.Background(), path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if slug != "s1" {
				t.Errorf("slug = %q", slug)
			}
			if u.declared["fileType"] != wantType || u.declared["fileName"] != name {
				t.Errorf("declared %v, want fileType %s and the base name", u.declared, wantType)
			}
			if !bytes.Equal(u.received, content) {
				t.Errorf("uploaded %q", u.received)
			}
		})
	}
}

func TestUploadFileErrorsNameThePath(t *testing.T) {
	u := newUploadServer(t)
	c := u.client()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.blend")
	_, err := c.UploadFile(context.Background(), missing, nil)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	wrongExt := filepath.Join(dir, "render.png")
	if err := os.WriteFile(wrongExt, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadFile(context.Background(), wrongExt, nil)
	if err == nil || !strings.Contains(err.Error(), wrongExt) || !strings.Contains(err.Error(), ".blend or .zip") {
		t.Errorf("wrong extension: %v", err)
	}

	dirBlend := filepath.Join(dir, "folder.blend")
	if err := os.Mkdir(dirBlend, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadFile(context.Background(), dirBlend, nil)
	if err == nil || !strings.Contains(err.Error(), dirBlend) {
		t.Errorf("directory: %v", err)
	}

	if n := u.requestCount(); n != 0 {
		t.Errorf("%d requests sent for files that cannot be uploaded", n)
	}
}

// statusSequence serves GET /jobs/{id} with the given statuses in turn, the
// last one from then on, and counts progress requests.
func statusSequence(f *fakeServer, statuses ...client.Status) *atomic.Int32 {
	var polls, progressCalls atomic.Int32
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		i := min(int(polls.Add(1))-1, len(statuses)-1)
		body := jobWithStatus(r.PathValue("id"), statuses[i])
		if statuses[i] == client.StatusFailed {
			body = fmt.Sprintf(`{"id": %q, "status": "failed", "failedReason": {"name": "Frame failed", "type": "render", "message": "frame 7: out of memory"}}`, r.PathValue("id"))
		}
		writeJSON(w, 200, `{"data": `+body+`}`)
	})
	f.handle("GET /jobs/{id}/progress", func(w http.ResponseWriter, r *http.Request) {
		n := progressCalls.Add(1)
		writeJSON(w, 200, fmt.Sprintf(`{"jobId": %q, "status": "rendering", "framesTotal": 24, "framesCompleted": %d}`, r.PathValue("id"), n))
	})
	return &polls
}

func TestWaitStopsOnFinalStatus(t *testing.T) {
	f := newFakeServer(t)
	polls := statusSequence(f, client.StatusBooting, client.StatusRendering, client.StatusRendering, client.StatusFinalizing, client.StatusCompleted)
	var seen []int
	job, err := f.client(client.WithPollInterval(time.Millisecond)).Wait(context.Background(), "j1", client.UntilFinal, func(p *client.Progress) {
		seen = append(seen, p.FramesCompleted)
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != client.StatusCompleted {
		t.Errorf("status = %s", job.Status)
	}
	if n := polls.Load(); n != 5 {
		t.Errorf("polled %d times, want 5 (stop at the first final status)", n)
	}
	if len(seen) != 5 {
		t.Errorf("onProgress called %d times, want once per poll", len(seen))
	}
}

func TestWaitForStatusThatCanNoLongerComeIsAnError(t *testing.T) {
	f := newFakeServer(t)
	statusSequence(f, client.StatusValidating, client.StatusFailed)
	job, err := f.client(client.WithPollInterval(time.Millisecond)).Wait(context.Background(), "j1", client.UntilStatus(client.StatusValidated), nil)
	var ended *client.JobEndedError
	if !errors.As(err, &ended) {
		t.Fatalf("err = %v, want *JobEndedError", err)
	}
	if job == nil || job.Status != client.StatusFailed || ended.Job != job {
		t.Errorf("job = %+v", job)
	}
	if want := "job j1 ended as failed (render): Frame failed: frame 7: out of memory"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}

	// Waiting for failure itself is not an error.
	f2 := newFakeServer(t)
	statusSequence(f2, client.StatusRendering, client.StatusFailed)
	if _, err := f2.client(client.WithPollInterval(time.Millisecond)).Wait(context.Background(), "j1", client.UntilStatus(client.StatusCompleted, client.StatusFailed), nil); err != nil {
		t.Errorf("waiting for completed or failed: %v", err)
	}
}

func TestWaitHonoursContextCancel(t *testing.T) {
	f := newFakeServer(t)
	statusSequence(f, client.StatusRendering)
	ctx, cancel := context.WithCancel(context.Background())
	c := f.client(client.WithPollInterval(time.Hour))

	done := make(chan struct{})
	polled := make(chan struct{})
	var once sync.Once
	var job *client.Job
	var err error
	go func() {
		defer close(done)
		job, err = c.Wait(ctx, "j1", client.UntilFinal, func(*client.Progress) { once.Do(func() { close(polled) }) })
	}()
	// Let the first poll happen, then cancel during the hour-long pause.
	select {
	case <-polled:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not poll within 5 s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if job == nil || job.Status != client.StatusRendering {
		t.Errorf("Wait did not return the last job it saw: %+v", job)
	}
}

func TestWaitStopsOnServerError(t *testing.T) {
	f := newFakeServer(t)
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "NOT_FOUND", "no job", "")
	})
	_, err := f.client(client.WithPollInterval(time.Millisecond)).Wait(context.Background(), "j1", nil, nil)
	if !client.IsNotFound(err) || !strings.HasPrefix(err.Error(), "wait for job j1: get job j1: 404") {
		t.Errorf("err = %v", err)
	}
}

func TestDownloadFileWritesAtomically(t *testing.T) {
	f := newFakeServer(t)
	content := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 50_000)
	f.handleRaw("GET /objects/jobs/j1/frames/frame_0001.png", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("download sent the API key to a presigned URL")
		}
		_, _ = w.Write(content)
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "frame_0001.png")
	n, err := f.client().DownloadFile(context.Background(), f.srv.URL+"/objects/jobs/j1/frames/frame_0001.png?sig=x", path)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(content)) {
		t.Errorf("n = %d, want %d", n, len(content))
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("file holds %d bytes (%v), want the %d served", len(got), err, len(content))
	}
	assertOnlyFiles(t, dir, "frame_0001.png")
}

func TestDownloadFileAcceptsURLRelativeToServer(t *testing.T) {
	f := newFakeServer(t)
	f.handleRaw("GET /objects/a.png", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "png")
	})
	path := filepath.Join(t.TempDir(), "a.png")
	if _, err := f.client().DownloadFile(context.Background(), "/objects/a.png?sig=x", path); err != nil {
		t.Fatal(err)
	}
}

func TestDownloadFileFailsOnShortBodyAndKeepsOldFile(t *testing.T) {
	f := newFakeServer(t)
	f.handleRaw("GET /objects/short.png", func(w http.ResponseWriter, r *http.Request) {
		// Announce 100 bytes, send 10, and hang up: a connection lost mid-file.
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: image/png\r\n\r\n0123456789")
		_ = buf.Flush()
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "short.png")
	if err := os.WriteFile(path, []byte("previous good frame"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.client().DownloadFile(context.Background(), f.srv.URL+"/objects/short.png?sig=SECRET", path)
	if err == nil {
		t.Fatal("a short body was accepted")
	}
	if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v: want the path named and the signature hidden", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "previous good frame" {
		t.Errorf("the old file was replaced by %q", got)
	}
	assertOnlyFiles(t, dir, "short.png")
}

func TestDownloadFileRefusalLeavesNothing(t *testing.T) {
	f := newFakeServer(t)
	f.handleRaw("GET /objects/gone.png", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "SIGNATURE_EXPIRED", "the link expired", "")
	})
	dir := t.TempDir()
	_, err := f.client().DownloadFile(context.Background(), f.srv.URL+"/objects/gone.png", filepath.Join(dir, "gone.png"))
	if !errors.As(err, new(*client.APIError)) {
		t.Fatalf("err = %v, want an APIError", err)
	}
	assertOnlyFiles(t, dir)
}

// assertOnlyFiles fails unless dir holds exactly the named files: no
// temporary file may be left behind.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %v, want %v", got, names)
	}
}

func TestStatuses(t *testing.T) {
	all := client.Statuses()
	if len(all) != 11 {
		t.Fatalf("%d statuses, want the 11 of the API", len(all))
	}
	final := map[client.Status]bool{client.StatusCompleted: true, client.StatusFailed: true, client.StatusCanceled: true}
	for _, s := range all {
		if s.IsFinal() != final[s] {
			t.Errorf("%s.IsFinal() = %v", s, s.IsFinal())
		}
		var decoded struct{ Status client.Status }
		if err := json.Unmarshal([]byte(`{"status":"`+string(s)+`"}`), &decoded); err != nil || decoded.Status != s {
			t.Errorf("status %q does not decode: %v", s, err)
		}
	}
}

func TestFileTypeOf(t *testing.T) {
	for name, want := range map[string]string{"a.blend": "blend", "b.Blend": "blend", "dir/c.ZIP": "zip", "d.blend1": "", "e": ""} {
		got, err := client.FileTypeOf(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("FileTypeOf(%q) = %q, %v", name, got, err)
		}
	}
}

// TestWaitWaitsOutAFarmThatIsBrieflyUnavailable: a 503 (the farm's
// database restarting, say) says to come back after Retry-After; Wait
// does, and ends when the job does. Any other error still ends it.
func TestWaitWaitsOutAFarmThatIsBrieflyUnavailable(t *testing.T) {
	f := newFakeServer(t)
	var polls atomic.Int32
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch polls.Add(1) {
		case 1, 2:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, "the farm's database is not answering; this is temporary", "")
		default:
			writeJSON(w, 200, `{"data": `+jobWithStatus(r.PathValue("id"), client.StatusCompleted)+`}`)
		}
	})
	start := time.Now()
	job, err := f.client(client.WithPollInterval(time.Millisecond)).Wait(context.Background(), "j1", client.UntilFinal, nil)
	if err != nil || job.Status != client.StatusCompleted {
		t.Fatalf("Wait = %+v, %v; want the job completed", job, err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("Wait asked again after %v; want the 2 s that two Retry-After: 1 ask for", took)
	}

	f2 := newFakeServer(t)
	f2.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, "report it with request id 7", "")
	})
	if _, err := f2.client(client.WithPollInterval(time.Millisecond)).Wait(context.Background(), "j1", client.UntilFinal, nil); err == nil || client.IsUnavailable(err) {
		t.Errorf("Wait on a 500 = %v, want the error", err)
	}
}

// TestDownloadsWalksEveryPage: Downloads asks for its files a page at a
// time and joins the pages, the zip and video once; a file a page repeats
// (a frame completed between two pages moved it on) is listed once.
func TestDownloadsWalksEveryPage(t *testing.T) {
	f := newFakeServer(t)
	output := func(frame int) string {
		return fmt.Sprintf(`{"url": "http://x/f%d.png", "fileName": "frame_%04d.png", "view": null, "legacy": false,
			"relativePath": "frame_%04d.png", "compositeNodeName": null, "frame": %d, "sizeBytes": 1}`, frame, frame, frame, frame)
	}
	pages := map[string][]int{"1": {1, 2}, "2": {2, 3}, "3": {4}}
	f.handle("GET /jobs/{id}/downloads", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("pageSize"); got != strconv.Itoa(client.DownloadsPageSize) {
			t.Errorf("pageSize %q, want %d", got, client.DownloadsPageSize)
		}
		page := r.URL.Query().Get("page")
		var outputs, urls []string
		for _, n := range pages[page] {
			outputs = append(outputs, output(n))
			urls = append(urls, fmt.Sprintf("%q", fmt.Sprintf("http://x/f%d.png", n)))
		}
		fmt.Fprintf(w, `{"frames": [%s], "compositeNodes": [], "frameOutputs": [%s], "compositeNodeOutputs": [],
			"transforms": {"framesZip": "http://x/frames.zip"},
			"pagination": {"page": %s, "pageSize": 2, "total": 5, "totalPages": 3}}`,
			strings.Join(urls, ","), strings.Join(outputs, ","), page)
	})
	d, err := f.client().Downloads(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	frames := frameNumbers(d)
	if fmt.Sprint(frames) != "[1 2 3 4]" || len(d.Frames) != 4 || d.Frames[3] != "http://x/f4.png" || d.Pagination != nil ||
		d.Transforms.FramesZip == nil {
		t.Errorf("downloads = frames %v, urls %v, pagination %+v; want frames 1 to 4 once, their urls, no pagination", frames, d.Frames, d.Pagination)
	}
}

// frameNumbers lists the frame of each of a downloads answer's frame
// outputs, in its order.
func frameNumbers(d *client.Downloads) []int {
	var frames []int
	for _, o := range d.FrameOutputs {
		frames = append(frames, *o.Frame)
	}
	return frames
}

// pagedDownloads serves a job's downloads a page at a time from files
// (frame numbers, one file each), as the farm pages them; between(page)
// runs after each page is answered, to change the job's files meanwhile.
// A job whose files were deleted answers the empty shape, without
// pagination, as the farm does.
func pagedDownloads(t *testing.T, f *fakeServer, files *[]int, deleted *bool, between func(page int)) {
	f.handle("GET /jobs/{id}/downloads", func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		defer between(page)
		if *deleted {
			fmt.Fprint(w, `{"frames": [], "compositeNodes": [], "frameOutputs": [], "compositeNodeOutputs": [], "transforms": {}}`)
			return
		}
		size := 2 // the farm's pages hold two files here, whatever was asked
		first := min((page-1)*size, len(*files))
		var outputs, urls []string
		for _, n := range (*files)[first:min(first+size, len(*files))] {
			outputs = append(outputs, fmt.Sprintf(`{"url": "http://x/f%d.png", "fileName": "frame_%04d.png", "view": null,
				"relativePath": "frame_%04d.png", "compositeNodeName": null, "frame": %d, "sizeBytes": 1}`, n, n, n, n))
			urls = append(urls, fmt.Sprintf("%q", fmt.Sprintf("http://x/f%d.png", n)))
		}
		fmt.Fprintf(w, `{"frames": [%s], "compositeNodes": [], "frameOutputs": [%s], "compositeNodeOutputs": [],
			"transforms": {"framesZip": "http://x/frames.zip"},
			"pagination": {"page": %d, "pageSize": %d, "total": %d, "totalPages": %d}}`,
			strings.Join(urls, ","), strings.Join(outputs, ","), page, size, len(*files), (len(*files)+size-1)/size)
	})
}

// TestDownloadsListsEveryFileLeftWhenFilesGoBetweenPages: a retry of
// frame 1 between the first page and the second removes its file, which
// moves every file after it back by one: the file that moved from the
// second page onto the first is still listed.
func TestDownloadsListsEveryFileLeftWhenFilesGoBetweenPages(t *testing.T) {
	f := newFakeServer(t)
	files := []int{1, 2, 3, 4, 5}
	deleted := false
	pagedDownloads(t, f, &files, &deleted, func(page int) {
		if page == 1 && files[0] == 1 {
			files = files[1:]
		}
	})
	d, err := f.client().Downloads(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	frames := frameNumbers(d)
	if fmt.Sprint(frames) != "[2 3 4 5]" || len(d.Frames) != 4 {
		t.Errorf("downloads = frames %v, urls %v; want frames 2 to 5, those the job holds", frames, d.Frames)
	}
}

// TestDownloadsOfAJobDeletedBetweenPagesListNoFile: a job deleted after
// its first page was read answers, as a job deleted before, no file: not
// the first page's, whose files are gone.
func TestDownloadsOfAJobDeletedBetweenPagesListNoFile(t *testing.T) {
	f := newFakeServer(t)
	files := []int{1, 2, 3, 4, 5}
	deleted := false
	pagedDownloads(t, f, &files, &deleted, func(page int) { deleted = true })
	d, err := f.client().Downloads(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 0 || len(d.Frames) != 0 || d.Transforms.FramesZip != nil || d.Pagination != nil {
		t.Errorf("downloads of a job deleted between pages = %d files (%v), zip %v; want none", len(d.FrameOutputs), d.Frames, d.Transforms.FramesZip)
	}
}
