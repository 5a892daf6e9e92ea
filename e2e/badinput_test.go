package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// TestBadFilesFailValidation uploads files that are not renderable and
// checks that each job fails validation with a reason that says what is
// wrong, and that Blender never had to run for the cheap checks.
func TestBadFilesFailValidation(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)
	cube, err := os.ReadFile(scene("cube.blend"))
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x17}, 2000)

	cases := []struct {
		name     string
		file     string
		content  []byte
		wantName string // failedReason.name
		wantText string // a word the message must contain
	}{
		{"text saved as .blend", "notes.blend", []byte("these are my render notes, not a scene\n"), "NOT_A_BLEND_FILE", "text"},
		{"truncated .blend", "short.blend", []byte("BLEND"), "TRUNCATED_BLEND_FILE", "upload"},
		{"corrupt .blend with a valid header", "corrupt.blend", append([]byte("BLENDER-v304"), garbage...), "BLENDER_CANNOT_OPEN_FILE", "Blender"},
		{"cut-off compressed .blend", "cut.blend", cube[:40], "", "upload"},
		{"zip without a .blend", "project.zip", zipOf(t, map[string][]byte{"readme.txt": []byte("hi"), "tex/a.png": {1}}), "ZIP_NO_BLEND", "readme.txt"},
		{"zip with two .blends", "project.zip", zipOf(t, map[string][]byte{"a.blend": cube, "b.blend": cube}), "ZIP_MULTIPLE_BLENDS", "a.blend"},
		{"zip with an escaping path", "project.zip", zipOf(t, map[string][]byte{"scene.blend": cube, "../../etc/cron.d/x": []byte("* * * * * root rm -rf /")}), "ZIP_UNSAFE_PATH", "../../etc/cron.d/x"},
		{"zip with an absolute path", "project.zip", zipOf(t, map[string][]byte{"scene.blend": cube, "/tmp/x": []byte("x")}), "ZIP_UNSAFE_PATH", "/tmp/x"},
		{"zip with a symlink", "project.zip", zipWithLink(t, cube), "ZIP_LINK", "textures"},
		{"zip bomb", "project.zip", zipOf(t, map[string][]byte{"scene.blend": cube, "cache.bin": make([]byte, 64<<20)}), "ZIP_BOMB", "cache.bin"},
		{"not a zip", "project.zip", []byte("PK but not really a zip file at all"), "CORRUPT_ZIP", "zip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			job := validate(ctx, t, c, submit(ctx, t, c, path).ID)
			if job.Status != client.StatusFailed || job.FailedReason == nil {
				t.Fatalf("status %s, failedReason %+v; want failed", job.Status, job.FailedReason)
			}
			r := job.FailedReason
			if r.Type != client.FailValidation || (tc.wantName != "" && r.Name != tc.wantName) {
				t.Errorf("failedReason = %+v, want name %s, type validation", r, tc.wantName)
			}
			if !strings.Contains(r.Message, tc.wantText) {
				t.Errorf("failedReason.message = %q, want it to mention %q", r.Message, tc.wantText)
			}
			if job.Analysis != nil {
				t.Errorf("a failed validation left an analysis: %+v", job.Analysis)
			}
			if _, _, err := c.Render(ctx, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default")}); !client.IsInvalidState(err) {
				t.Errorf("render of a failed job: %v, want INVALID_STATE", err)
			}
		})
	}
	// Nothing extracted from the refused zips stays behind.
	leftovers := 0
	_ = filepath.WalkDir(filepath.Join(f.DataDir, "work"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			leftovers++
		}
		return nil
	})
	if leftovers != 0 {
		t.Errorf("%d files left in the work directory after failed validations", leftovers)
	}
}

// TestBadRequestsChangeNothing sends requests the contract refuses and
// checks each answer's status and code, and that the job did not move.
func TestBadRequestsChangeNothing(t *testing.T) {
	f := startFarm(t)
	c := f.lenientClient("studio")
	ctx := testContext(t)

	created := submit(ctx, t, c, scene("cube.blend"))
	validated := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	ticket, err := c.CreateUpload(ctx, "never.blend", "blend")
	if err != nil {
		t.Fatal(err)
	}
	before := countJobs(ctx, t, c)

	cfg := func(mut func(*client.RenderConfig)) client.RenderConfig {
		rc := client.RenderConfig{ColorManagementPreset: client.String("default")}
		mut(&rc)
		return rc
	}
	cases := []struct {
		name      string
		call      func() error
		status    int
		code      string
		field     string
		unchanged *client.Job
	}{
		{"fileType does not match the extension", func() error { _, err := c.CreateUpload(ctx, "scene.blend", "zip"); return err }, 400, "INVALID_REQUEST", "fileType", nil},
		{"unknown fileType", func() error { _, err := c.CreateUpload(ctx, "scene.ma", "maya"); return err }, 400, "INVALID_REQUEST", "fileType", nil},
		{"file name with a folder", func() error { _, err := c.CreateUpload(ctx, "../scene.blend", "blend"); return err }, 400, "INVALID_REQUEST", "fileName", nil},
		{"unknown slug", func() error { _, err := c.CreateJob(ctx, "no-such-slug"); return err }, 400, "UPLOAD_NOT_FOUND", "slug", nil},
		{"slug whose file never arrived", func() error { _, err := c.CreateJob(ctx, ticket.Slug); return err }, 400, "UPLOAD_NOT_RECEIVED", "slug", nil},
		{"slug used twice", func() error { _, err := c.CreateJob(ctx, created.Slug); return err }, 400, "SLUG_ALREADY_USED", "slug", nil},
		{"validate twice", func() error { _, err := c.Validate(ctx, validated.ID); return err }, 400, "INVALID_STATE", "", validated},
		{"render before validating", func() error { _, _, err := c.Render(ctx, created.ID, cfg(func(*client.RenderConfig) {})); return err }, 400, "INVALID_STATE", "", created},
		{"empty config", func() error { _, _, err := c.Render(ctx, validated.ID, client.RenderConfig{}); return err }, 400, "", "", validated},
		{"frame range backwards", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.FrameRanges = []string{"5-1"} }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "frameRanges", validated},
		{"frame range not numbers", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.FrameRanges = []string{"a-b"} }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "frameRanges", validated},
		{"frames beyond the file", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.FrameRanges = []string{"20-30"} }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "frameRanges", validated},
		{"resolution zero", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.Resolution = []int{0, 180} }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "resolution", validated},
		{"resolution too large", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.Resolution = []int{20000, 180} }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "resolution", validated},
		{"unknown engine", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.RenderEngine = client.String("OCTANE") }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "renderEngine", validated},
		{"movie output format", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.OutputFormat = client.String("FFMPEG") }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "outputFormat", validated},
		{"denoiser this Blender lacks", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.DenoisingEnabled = client.Bool(true) }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "denoisingEnabled", validated},
		{"a GPU the farm does not have", func() error {
			_, _, err := c.Render(ctx, validated.ID, cfg(func(rc *client.RenderConfig) { rc.ComputeDeviceType = client.String("CUDA") }))
			return err
		}, 400, "INVALID_RENDER_CONFIG", "computeDeviceType", validated},
		{"unknown job id", func() error { _, err := c.GetJob(ctx, "1b4e28ba-2fa1-11d2-883f-0016d3cca427"); return err }, 404, "NOT_FOUND", "", nil},
		{"job id that is not a uuid", func() error { _, err := c.Progress(ctx, "../../etc/passwd"); return err }, 404, "NOT_FOUND", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.field == "denoisingEnabled" && validated.Analysis.DenoiserAvailable {
				t.Skip("this farm's Blender has a denoiser (the analysis says so): the request is one it honours")
			}
			err := tc.call()
			var apiErr *client.APIError
			if !asAPIError(err, &apiErr) {
				t.Fatalf("got %v, want an API error", err)
			}
			if apiErr.StatusCode != tc.status || (tc.code != "" && apiErr.Code != tc.code) {
				t.Errorf("got %d %s, want %d %s", apiErr.StatusCode, apiErr.Code, tc.status, tc.code)
			}
			if tc.field != "" && !strings.HasSuffix(apiErr.Field, tc.field) {
				t.Errorf("field = %q, want %q", apiErr.Field, tc.field)
			}
			if apiErr.Message == "" {
				t.Error("the error has no message")
			}
			if tc.unchanged != nil {
				now, err := c.GetJob(ctx, tc.unchanged.ID)
				if err != nil {
					t.Fatal(err)
				}
				if now.Status != tc.unchanged.Status || now.FinalConfig != nil {
					t.Errorf("job moved to %s (finalConfig %v) after a refused request", now.Status, now.FinalConfig)
				}
			}
		})
	}
	if after := countJobs(ctx, t, c); after != before {
		t.Errorf("%d jobs after the refused requests, %d before", after, before)
	}
}

// TestWorkspacesAreIsolated: another workspace's ids are 404 everywhere
// and its slugs are unknown.
func TestWorkspacesAreIsolated(t *testing.T) {
	f := startFarm(t)
	a, b := f.client("studio-a"), f.client("studio-b")
	ctx := testContext(t)

	job := submit(ctx, t, a, scene("cube.blend"))
	ticket, err := a.CreateUpload(ctx, "other.blend", "blend")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"get":      func() error { _, err := b.GetJob(ctx, job.ID); return err },
		"validate": func() error { _, err := b.Validate(ctx, job.ID); return err },
		"render": func() error {
			_, _, err := b.Render(ctx, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default")})
			return err
		},
		"cancel":    func() error { _, err := b.Cancel(ctx, job.ID); return err },
		"progress":  func() error { _, err := b.Progress(ctx, job.ID); return err },
		"downloads": func() error { _, err := b.Downloads(ctx, job.ID); return err },
	}
	for name, call := range calls {
		if err := call(); !client.IsNotFound(err) {
			t.Errorf("%s of another workspace's job: %v, want 404", name, err)
		}
	}
	if _, err := b.CreateJob(ctx, ticket.Slug); !client.HasCode(err, client.CodeUploadNotFound) {
		t.Errorf("create job from another workspace's slug: %v, want UPLOAD_NOT_FOUND", err)
	}
	list, err := b.ListJobs(ctx, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if list.Pagination.Total != 0 || len(list.Jobs) != 0 {
		t.Errorf("workspace b sees %d jobs", list.Pagination.Total)
	}
	if got, err := a.GetJob(ctx, job.ID); err != nil || got.Status != client.StatusCreated {
		t.Errorf("workspace a's job after b's attempts: %v %v", got, err)
	}
}

func countJobs(ctx context.Context, t *testing.T, c *client.Client) int {
	t.Helper()
	list, err := c.ListJobs(ctx, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Pagination.Total
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipWithLink(t *testing.T, blend []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("scene.blend")
	_, _ = w.Write(blend)
	h := &zip.FileHeader{Name: "textures"}
	h.SetMode(fs.ModeSymlink | 0o777)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("/etc"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func asAPIError(err error, target **client.APIError) bool {
	return errors.As(err, target)
}

// TestMalformedBodiesAreRefusedWholesale sends raw requests that no client
// library would: broken JSON, a body over 1 MiB, no key. Each gets its JSON
// error, and no job appears.
func TestMalformedBodiesAreRefusedWholesale(t *testing.T) {
	f := startFarm(t)
	key := f.Key("studio")
	c := f.lenientClient("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	before := countJobs(ctx, t, c)

	api := f.URL + "/api/external/v1"
	huge := `{"requestedRenderConfig": {"colorManagementPreset": "default", "notes": "` + strings.Repeat("x", 2<<20) + `"}}`
	cases := []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		code                     string
	}{
		{"broken JSON", "POST", "/jobs", `{"slug": `, true, 400, "INVALID_JSON"},
		{"JSON that is not an object", "POST", "/uploads", `["scene.blend"]`, true, 400, "INVALID_JSON"},
		{"trailing data", "POST", "/jobs", `{"slug": "x"} {"slug": "y"}`, true, 400, "INVALID_JSON"},
		{"a number where a string goes", "POST", "/uploads", `{"fileName": 7, "fileType": "blend"}`, true, 400, ""},
		{"body over 1 MiB", "POST", "/jobs/" + job.ID + "/render", huge, true, 413, "PAYLOAD_TOO_LARGE"},
		{"no API key", "GET", "/jobs", "", false, 401, "UNAUTHORIZED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tc.method, api+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("answer is not a JSON error: %v", err)
			}
			if resp.StatusCode != tc.status || (tc.code != "" && body.Error.Code != tc.code) || body.Error.Message == "" {
				t.Errorf("got %d %+v, want %d %s with a message", resp.StatusCode, body.Error, tc.status, tc.code)
			}
		})
	}
	if after := countJobs(ctx, t, c); after != before {
		t.Errorf("%d jobs after the refused requests, %d before", after, before)
	}
	if now, err := c.GetJob(ctx, job.ID); err != nil || now.Status != client.StatusValidated {
		t.Errorf("job after the refused render: %v %v, want still validated", now, err)
	}
}

// TestUploadOverTheLimitIsRefused: a file larger than --max-upload-bytes is
// refused with 413 while it streams in, and no job can be made from it.
func TestUploadOverTheLimitIsRefused(t *testing.T) {
	f := startFarm(t, "--max-upload-bytes", "10KiB")
	c := f.client("studio")
	ctx := testContext(t)

	ticket, err := c.CreateUpload(ctx, "cube.blend", "blend")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(scene("cube.blend"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	info, _ := file.Stat()
	err = c.Upload(ctx, ticket.UploadURL, file, info.Size(), nil)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("upload of %d bytes with a 10 KiB limit: %v, want 413", info.Size(), err)
	}
	if _, err := c.CreateJob(ctx, ticket.Slug); !client.HasCode(err, client.CodeUploadMissing) {
		t.Errorf("create job from the refused upload: %v, want UPLOAD_NOT_RECEIVED", err)
	}
	left, _ := filepath.Glob(filepath.Join(f.DataDir, "objects", "uploads", ticket.Slug, "*"))
	if len(left) != 0 {
		t.Errorf("files left behind by the refused upload: %v", left)
	}
}
