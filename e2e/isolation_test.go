package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/httpapi"
)

// renderOneFrame makes a completed one-frame job of cube.blend.
func renderOneFrame(ctx context.Context, t *testing.T, c *client.Client) *client.Job {
	t.Helper()
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	job = renderAndWait(ctx, t, c, job.ID, client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1"},
		SampleCount:           client.Int(4),
	})
	if job.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", job.Status, job.FailedReason)
	}
	return job
}

// TestEveryRouteWithAnIDIsIsolated calls every operation of the API that
// takes an id with the ids of another workspace's job and webhook, and
// gets 404 from each, with nothing changed; the list of operations comes
// from the API document, so a route added later is covered or fails here.
func TestEveryRouteWithAnIDIsIsolated(t *testing.T) {
	f := startFarm(t, "--webhook-allow-private")
	a, b := f.client("studio-a"), f.client("studio-b")
	ctx := testContext(t)

	job := renderOneFrame(ctx, t, a)
	hook, err := a.CreateWebhook(ctx, "http://127.0.0.1:9/renderfarm", []string{client.EventRenderComplete})
	if err != nil {
		t.Fatal(err)
	}

	cfg := client.RenderConfig{ColorManagementPreset: client.String("default")}
	calls := map[string]func() error{
		"GET /jobs/{id}":           func() error { _, err := b.GetJob(ctx, job.ID); return err },
		"DELETE /jobs/{id}":        func() error { _, err := b.DeleteJob(ctx, job.ID); return err },
		"POST /jobs/{id}/validate": func() error { _, err := b.Validate(ctx, job.ID); return err },
		"POST /jobs/{id}/render":   func() error { _, _, err := b.Render(ctx, job.ID, cfg); return err },
		"POST /jobs/{id}/cancel":   func() error { _, err := b.Cancel(ctx, job.ID); return err },
		"POST /jobs/{id}/suspend":  func() error { _, _, err := b.Suspend(ctx, job.ID); return err },
		"POST /jobs/{id}/resume":   func() error { _, _, err := b.Resume(ctx, job.ID); return err },
		"POST /jobs/{id}/retry": func() error {
			_, err := b.Retry(ctx, job.ID, client.RetryRequest{Frames: client.RetryFailed})
			return err
		},
		"PATCH /jobs/{id}":                  func() error { _, err := b.SetPriority(ctx, job.ID, 90); return err },
		"GET /jobs/{id}/progress":           func() error { _, err := b.Progress(ctx, job.ID); return err },
		"GET /jobs/{id}/downloads":          func() error { _, err := b.Downloads(ctx, job.ID); return err },
		"GET /jobs/{id}/log":                func() error { _, err := b.JobLog(ctx, job.ID); return err },
		"GET /webhooks/{id}":                func() error { _, err := b.GetWebhook(ctx, hook.ID); return err },
		"DELETE /webhooks/{id}":             func() error { return b.DeleteWebhook(ctx, hook.ID) },
		"POST /webhooks/{id}/rotate-secret": func() error { _, err := b.RotateWebhookSecret(ctx, hook.ID); return err },
		"GET /webhooks/{id}/deliveries":     func() error { _, err := b.WebhookDeliveries(ctx, hook.ID); return err },
	}

	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		if !strings.Contains(path, "{id}") {
			continue
		}
		for method := range item.Operations() {
			if _, ok := calls[method+" "+path]; !ok {
				t.Errorf("%s %s takes an id but is not tried with another workspace's", method, path)
			}
		}
	}

	for op, call := range calls {
		err := call()
		var apiErr *client.APIError
		if !client.IsNotFound(err) || !asAPIError(err, &apiErr) || apiErr.Code != client.CodeNotFound {
			t.Errorf("%s with another workspace's id: %v, want 404 NOT_FOUND", op, err)
		}
	}

	// Workspace a still has all it had.
	if got, err := a.GetJob(ctx, job.ID); err != nil || got.Status != client.StatusCompleted || got.Output.IsDeletedForClient || got.Priority != job.Priority {
		t.Errorf("a's job after b's attempts: %+v, %v", got, err)
	}
	if d, err := a.Downloads(ctx, job.ID); err != nil || len(d.FrameOutputs) != 1 {
		t.Errorf("a's downloads after b's attempts: %+v, %v", d, err)
	}
	if got, err := a.GetWebhook(ctx, hook.ID); err != nil || got.URL != hook.URL {
		t.Errorf("a's webhook after b's attempts: %+v, %v", got, err)
	}
	if hooks, err := b.ListWebhooks(ctx); err != nil || len(hooks) != 0 {
		t.Errorf("b lists webhooks %+v, %v; want none", hooks, err)
	}
	if list, err := b.ListJobs(ctx, client.ListOptions{}); err != nil || list.Pagination.Total != 0 {
		t.Errorf("b lists jobs %+v, %v; want none", list, err)
	}
}

// objectError sends a request to a presigned URL, as anyone holding it
// could, and answers the status and the error code of the answer.
func objectError(t *testing.T, method, rawURL, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code
}

// withPath is rawURL with its path replaced and its query (the signature)
// kept.
func withPath(t *testing.T, rawURL, path string) string {
	t.Helper()
	u := mustParse(t, rawURL)
	u.Path, u.RawPath = path, ""
	return u.String()
}

// TestPresignedURLsReachOnlyTheirObject takes the presigned URLs the farm
// handed to one workspace and points them at other objects: another job's
// frame, another upload's file. The local object store refuses every one
// with 403, since the signature covers the key and the method.
func TestPresignedURLsReachOnlyTheirObject(t *testing.T) {
	f := startFarm(t)
	a, b := f.client("studio-a"), f.client("studio-b")
	ctx := testContext(t)

	jobA, jobB := renderOneFrame(ctx, t, a), renderOneFrame(ctx, t, b)
	downloadsA, err := a.Downloads(ctx, jobA.ID)
	if err != nil {
		t.Fatal(err)
	}
	downloadsB, err := b.Downloads(ctx, jobB.ID)
	if err != nil {
		t.Fatal(err)
	}
	frameA, frameB := downloadsA.FrameOutputs[0].URL, downloadsB.FrameOutputs[0].URL
	if status, _ := objectError(t, "GET", frameB, ""); status != http.StatusOK {
		t.Fatalf("b's own frame URL: %d, want 200", status)
	}

	pathA := mustParse(t, frameA).Path
	if !strings.HasPrefix(pathA, "/objects/jobs/"+jobA.ID+"/") {
		t.Fatalf("a's frame is served at %s, not under its job", pathA)
	}
	zipA := mustParse(t, *downloadsA.Transforms.FramesZip).Path
	if !strings.HasPrefix(zipA, "/objects/jobs/"+jobA.ID+"/") {
		t.Fatalf("a's zip is served at %s, not under its job", zipA)
	}
	inputA := "/objects/jobs/" + jobA.ID + "/input/cube.blend"
	refused := map[string]string{
		"b's frame URL on a's frame":    withPath(t, frameB, pathA),
		"b's frame URL on a's zip":      withPath(t, frameB, zipA),
		"b's frame URL on a's input":    withPath(t, frameB, inputA),
		"b's zip URL on a's zip":        withPath(t, *downloadsB.Transforms.FramesZip, zipA),
		"b's frame URL without its sig": strings.Split(frameB, "?")[0],
	}
	for name, u := range refused {
		if status, code := objectError(t, "GET", u, ""); status != http.StatusForbidden || code != "INVALID_SIGNATURE" {
			t.Errorf("%s: %d %s, want 403 INVALID_SIGNATURE", name, status, code)
		}
	}

	// An upload URL takes one file, for its own key, and reads nothing.
	ticket, err := b.CreateUpload(ctx, "scene.blend", "blend")
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(f.DataDir, "objects", "jobs", jobA.ID, "input", "cube.blend"))
	if err != nil {
		t.Fatal(err)
	}
	uploadPath := mustParse(t, ticket.UploadURL).Path
	puts := map[string]string{
		"on a's input":             withPath(t, ticket.UploadURL, inputA),
		"on a's frame":             withPath(t, ticket.UploadURL, pathA),
		"on another name":          withPath(t, ticket.UploadURL, strings.TrimSuffix(uploadPath, "scene.blend")+"other.blend"),
		"on another upload's slug": withPath(t, ticket.UploadURL, strings.Replace(uploadPath, ticket.Slug, jobA.Slug, 1)),
	}
	for name, u := range puts {
		if status, code := objectError(t, "PUT", u, "BLENDER-v402 overwritten"); status != http.StatusForbidden || code != "INVALID_SIGNATURE" {
			t.Errorf("upload URL %s: %d %s, want 403 INVALID_SIGNATURE", name, status, code)
		}
	}
	if status, code := objectError(t, "GET", ticket.UploadURL, ""); status != http.StatusForbidden || code != "INVALID_SIGNATURE" {
		t.Errorf("GET with an upload URL: %d %s, want 403 INVALID_SIGNATURE", status, code)
	}
	after, err := os.ReadFile(filepath.Join(f.DataDir, "objects", "jobs", jobA.ID, "input", "cube.blend"))
	if err != nil || string(after) != string(before) {
		t.Errorf("a's input changed after the refused uploads (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(f.DataDir, "objects", "uploads", ticket.Slug, "*")); len(left) != 0 {
		t.Errorf("refused uploads left files: %v", left)
	}
}

func mustParse(t *testing.T, rawURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
