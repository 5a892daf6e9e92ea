package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// TestMetricsAndRiverUI: /metrics reports jobs and frames in Prometheus'
// format, and it and River's UI answer only with the admin token.
func TestMetricsAndRiverUI(t *testing.T) {
	f := startFarm(t, "--admin-token", "s3cret-token")
	c := f.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-2"}}); done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s", done.Status)
	}

	body := getWithBearer(t, f.URL+"/metrics", "s3cret-token", http.StatusOK)
	for _, want := range []string{`renderfarm_jobs{status="completed"} 1`, `renderfarm_frames_rendered_total{worker=`, "renderfarm_render_seconds_total", "renderfarm_upload_bytes_total", "renderfarm_workers 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	get(t, f.URL+"/riverui/", "", http.StatusUnauthorized)
	get(t, f.URL+"/riverui/", "wrong", http.StatusUnauthorized)
	if page := get(t, f.URL+"/riverui/", "s3cret-token", http.StatusOK); !strings.Contains(strings.ToLower(page), "<html") {
		t.Errorf("River UI answered no page: %.200s", page)
	}
}

func get(t *testing.T, url, password string, want int) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %.300s", url, resp.StatusCode, want, b)
	}
	return string(b)
}
