package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// routeCase is one operation of the API with a valid request.
type routeCase struct {
	name   string
	method string
	path   string
	body   string
	status int
	call   call // what the farm must have been asked; Method "" for none
	// shape checks the top level of the answer: which wrapper, if any.
	// Nil for a 204, which has no body to check.
	shape func(t *testing.T, v any)
}

func isBareJob(t *testing.T, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || m["id"] == nil || m["status"] == nil || m["data"] != nil {
		t.Errorf("want a bare Job object, got %v", v)
	}
}

func isWrappedJob(t *testing.T, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("want {\"data\": Job}, got %v", v)
	}
	isBareJob(t, m["data"])
}

func hasKeys(keys ...string) func(t *testing.T, v any) {
	return func(t *testing.T, v any) {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("want an object, got %v", v)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("answer has no %q: %v", k, v)
			}
		}
	}
}

// isWebhook checks a bare Webhook, which shows the secret only when the
// route is one that promises it.
func isWebhook(withSecret bool) func(t *testing.T, v any) {
	return func(t *testing.T, v any) {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok || m["id"] == nil || m["url"] == nil || m["events"] == nil || m["data"] != nil {
			t.Fatalf("want a bare Webhook object, got %v", v)
		}
		secret, has := m["secret"]
		switch {
		case withSecret && secret != testSecret:
			t.Errorf("secret %v, want the one the farm made", secret)
		case !withSecret && has:
			t.Errorf("the secret is shown where it must not be: %v", v)
		}
	}
}

func isWrappedWebhook(t *testing.T, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("want {\"data\": Webhook}, got %v", v)
	}
	isWebhook(false)(t, m["data"])
}

// isListOf checks an object whose one field, key, holds n items, each
// checked by item if it is not nil.
func isListOf(key string, n int, item func(t *testing.T, v any)) func(t *testing.T, v any) {
	return func(t *testing.T, v any) {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			t.Fatalf("want {%q: [...]}, got %v", key, v)
		}
		a, ok := m[key].([]any)
		if !ok || len(a) != n {
			t.Fatalf("want %d items in %q, got %v", n, key, m[key])
		}
		if item != nil {
			for _, it := range a {
				item(t, it)
			}
		}
	}
}

func isArray(n int) func(t *testing.T, v any) {
	return func(t *testing.T, v any) {
		t.Helper()
		a, ok := v.([]any)
		if !ok || len(a) != n {
			t.Errorf("want an array of %d, got %v", n, v)
		}
	}
}

func routeCases() []routeCase {
	p := testPrincipal
	return []routeCase{
		{"create upload", "POST", "/uploads", `{"fileName": "scene.blend", "fileType": "blend"}`, 200,
			call{"CreateUpload", p, "scene.blend", "blend"}, hasKeys("uploadUrl", "slug", "expiresAt")},
		{"create job", "POST", "/jobs", `{"slug": "` + testSlug + `"}`, 201,
			call{"CreateJob", p, testSlug, nil}, isBareJob},
		{"list jobs", "GET", "/jobs", "", 200,
			call{"ListJobs", p, "", farm.ListQuery{Page: 1, PageSize: 10}}, hasKeys("jobs", "pagination")},
		{"running progress", "GET", "/jobs/progress", "", 200,
			call{"RunningProgress", p, "", farm.ProgressQuery{}}, isArray(1)},
		{"get job", "GET", "/jobs/" + jobID, "", 200,
			call{"GetJob", p, jobID, nil}, isWrappedJob},
		{"delete job", "DELETE", "/jobs/" + jobID, "", 200,
			call{"DeleteJob", p, jobID, nil}, isBareJob},
		{"set priority", "PATCH", "/jobs/" + jobID, `{"priority": 80}`, 200,
			call{"SetPriority", p, jobID, 80}, isBareJob},
		{"validate", "POST", "/jobs/" + jobID + "/validate", "", 200,
			call{"Validate", p, jobID, nil}, isBareJob},
		{"render", "POST", "/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "sampleCount": 8}}`, 200,
			call{"Render", p, jobID, &farm.RenderConfig{ColorManagementPreset: ptr("default"), SampleCount: ptr(8)}}, isBareJob},
		{"cancel", "POST", "/jobs/" + jobID + "/cancel", "", 200,
			call{"Cancel", p, jobID, nil}, isBareJob},
		{"suspend", "POST", "/jobs/" + jobID + "/suspend", "", 200,
			call{"Suspend", p, jobID, nil}, isBareJob},
		{"resume", "POST", "/jobs/" + jobID + "/resume", "", 200,
			call{"Resume", p, jobID, nil}, isBareJob},
		{"retry failed frames", "POST", "/jobs/" + jobID + "/retry", `{"frames": "failed"}`, 200,
			call{"Retry", p, jobID, farm.RetryRequest{Frames: "failed"}}, isBareJob},
		{"retry frame ranges", "POST", "/jobs/" + jobID + "/retry", `{"frameRanges": ["12", "40-45"]}`, 200,
			call{"Retry", p, jobID, farm.RetryRequest{FrameRanges: []string{"12", "40-45"}}}, isBareJob},
		{"progress", "GET", "/jobs/" + jobID + "/progress", "", 200,
			call{"Progress", p, jobID, farm.ProgressQuery{}}, hasKeys("jobId", "framesTotal", "frames", "etaSeconds")},
		{"downloads", "GET", "/jobs/" + jobID + "/downloads", "", 200,
			call{"Downloads", p, jobID, farm.DownloadsQuery{}}, hasKeys("frames", "compositeNodes", "transforms", "frameOutputs", "compositeNodeOutputs")},
		{"job log", "GET", "/jobs/" + jobID + "/log", "", 200,
			call{"JobLog", p, jobID, nil}, isListOf("lines", 2, nil)},
		{"blender versions", "GET", "/blender", "", 200,
			call{"BlenderVersions", p, "", nil}, isListOf("versions", 2, hasKeys("version", "workers"))},
		{"usage", "GET", "/usage", "", 200,
			call{"Usage", p, "", usageBounds{}}, hasKeys("from", "to", "groupBy", "rows", "total")},
		{"create webhook", "POST", "/webhooks", `{"url": "https://pipeline.example.com/renderfarm", "events": ["onRenderComplete", "onStatusChange"]}`, 201,
			call{"CreateWebhook", p, "https://pipeline.example.com/renderfarm", []string{"onRenderComplete", "onStatusChange"}}, isWebhook(true)},
		{"list webhooks", "GET", "/webhooks", "", 200,
			call{"ListWebhooks", p, "", nil}, isListOf("webhooks", 1, isWebhook(false))},
		{"get webhook", "GET", "/webhooks/" + hookID, "", 200,
			call{"GetWebhook", p, hookID, nil}, isWrappedWebhook},
		{"delete webhook", "DELETE", "/webhooks/" + hookID, "", 204,
			call{"DeleteWebhook", p, hookID, nil}, nil},
		{"rotate webhook secret", "POST", "/webhooks/" + hookID + "/rotate-secret", "", 200,
			call{"RotateWebhookSecret", p, hookID, nil}, isWebhook(true)},
		{"webhook deliveries", "GET", "/webhooks/" + hookID + "/deliveries", "", 200,
			call{"WebhookDeliveries", p, hookID, nil}, isListOf("deliveries", 3, hasKeys("deliveryId", "httpStatus", "error", "nextRetryAt"))},
		{"openapi", "GET", "/openapi.json", "", 200, call{}, hasKeys("openapi", "paths", "components")},
	}
}

func TestRoutes(t *testing.T) {
	for _, tc := range routeCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, httpapi.Options{})
			r := e.do(e.strict, tc.method, apiPrefix+tc.path, tc.body)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id header")
			}
			if tc.status == http.StatusNoContent {
				if len(r.body) != 0 || r.Header.Get("Content-Type") != "" {
					t.Errorf("204 with Content-Type %q and body %q; want neither", r.Header.Get("Content-Type"), r.body)
				}
			} else {
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				tc.shape(t, r.decoded(t))
			}

			calls := e.farm.Calls()
			if tc.call.Method == "" {
				if len(calls) != 0 {
					t.Errorf("farm was called: %+v", calls)
				}
				return
			}
			if len(calls) != 1 || !reflect.DeepEqual(calls[0], tc.call) {
				t.Errorf("farm calls %+v, want [%+v]", calls, tc.call)
			}
		})
	}
}

// TestEveryOperationIsRouted keeps the route table above, and so the
// server, in step with the document: an operation added to one and not the
// other fails here.
func TestEveryOperationIsRouted(t *testing.T) {
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	// Served outside BasePath; see TestHealthz and TestReadyz.
	tested := map[string]bool{"GET /healthz": true, "GET /readyz": true}
	for _, tc := range routeCases() {
		path := tc.path
		for _, id := range []string{jobID, hookID} {
			path = strings.Replace(path, id, "{id}", 1)
		}
		tested[tc.method+" "+path] = true
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !tested[method+" "+path] {
				t.Errorf("the document has %s %s but the route table does not test it", method, path)
			}
			delete(tested, method+" "+path)
		}
	}
	for op := range tested {
		t.Errorf("%s is served but not in the document", op)
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{})
	r := e.do(http.DefaultClient, "GET", "/healthz", "", "")
	if r.StatusCode != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Errorf("got %d %s", r.StatusCode, r.body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestRenderReplayHeader(t *testing.T) {
	for _, replay := range []bool{false, true} {
		f := fullFarm()
		f.replay = replay
		e := newEnv(t, f, httpapi.Options{})
		r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/render", `{"requestedRenderConfig": {"colorManagementPreset": "default"}}`)
		if r.StatusCode != 200 {
			t.Fatalf("replay=%v: status %d: %s", replay, r.StatusCode, r.body)
		}
		got := r.Header.Get("X-Idempotent-Replay")
		if want := map[bool]string{true: "true", false: ""}[replay]; got != want {
			t.Errorf("replay=%v: X-Idempotent-Replay %q, want %q", replay, got, want)
		}
		isBareJob(t, r.decoded(t))
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	f := fullFarm()
	f.running = nil
	f.progress = &farm.Progress{JobID: jobID, Status: farm.StatusCreated}
	f.downloads = &farm.Downloads{}
	f.page = &farm.JobPage{Pagination: farm.Pagination{Page: 3, PageSize: 10, Total: 2, TotalPages: 1}}
	e := newEnv(t, f, httpapi.Options{})

	r := e.do(e.strict, "GET", apiPrefix+"/jobs/progress", "")
	if r.StatusCode != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Errorf("running progress: %d %s, want 200 []", r.StatusCode, r.body)
	}

	r = e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID+"/progress", "")
	if v := r.decoded(t).(map[string]any); !reflect.DeepEqual(v["frames"], []any{}) || v["etaSeconds"] != nil {
		t.Errorf("progress: frames %v, etaSeconds %v; want [] and null", v["frames"], v["etaSeconds"])
	}

	r = e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID+"/downloads", "")
	want := `{"frames":[],"compositeNodes":[],"transforms":{"framesZip":null,"compositeNodesZip":null,"video":null,"framesZipOutputs":null,"compositeNodesZipOutputs":null},"frameOutputs":[],"compositeNodeOutputs":[]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("downloads before output:\n got %s\nwant %s", got, want)
	}

	r = e.do(e.strict, "GET", apiPrefix+"/jobs?page=3", "")
	if v := r.decoded(t).(map[string]any); !reflect.DeepEqual(v["jobs"], []any{}) {
		t.Errorf("empty page: jobs %v, want []", v["jobs"])
	}

	f.webhooks = nil
	f.deliveries = nil
	f.jobLog = &farm.JobLog{}
	f.blender = &farm.BlenderOffers{}
	for path, want := range map[string]string{
		"/blender":                            `{"versions":[]}`,
		"/webhooks":                           `{"webhooks":[]}`,
		"/webhooks/" + hookID + "/deliveries": `{"deliveries":[]}`,
		"/jobs/" + jobID + "/log":             `{"lines":[]}`,
	} {
		r = e.do(e.strict, "GET", apiPrefix+path, "")
		if got := strings.TrimSpace(string(r.body)); r.StatusCode != 200 || got != want {
			t.Errorf("%s: %d %s, want 200 %s", path, r.StatusCode, got, want)
		}
	}
}

func TestNewJobHasNulls(t *testing.T) {
	f := fullFarm()
	f.job = newJob()
	e := newEnv(t, f, httpapi.Options{})
	r := e.do(e.strict, "GET", apiPrefix+"/jobs/"+otherID, "")
	var body struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rootFolderId", "previewUrl", "failedReason", "requestedConfig", "finalConfig", "analysisId", "analysis", "sceneFile"} {
		if got := string(body.Data[k]); got != "null" {
			t.Errorf("%s = %s, want null", k, got)
		}
	}
}

func TestTimesAreUTC(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{})
	r := e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID, "")
	job := r.decoded(t).(map[string]any)["data"].(map[string]any)
	if job["createdAt"] != "2025-06-01T10:00:00Z" || job["updatedAt"] != "2025-06-01T10:01:30Z" {
		t.Errorf("createdAt %v, updatedAt %v; want UTC", job["createdAt"], job["updatedAt"])
	}
	r = e.do(e.strict, "POST", apiPrefix+"/uploads", `{"fileName": "scene.blend", "fileType": "blend"}`)
	if got := r.decoded(t).(map[string]any)["expiresAt"]; got != "2025-06-01T10:15:00Z" {
		t.Errorf("expiresAt %v, want UTC", got)
	}

	const created = "2025-06-01T10:00:00Z"
	r = e.do(e.strict, "POST", apiPrefix+"/webhooks", `{"url": "https://pipeline.example.com/renderfarm", "events": ["onRenderFail"]}`)
	if got := r.decoded(t).(map[string]any)["createdAt"]; got != created {
		t.Errorf("created webhook: createdAt %v, want UTC", got)
	}
	r = e.do(e.strict, "GET", apiPrefix+"/webhooks/"+hookID, "")
	if got := r.decoded(t).(map[string]any)["data"].(map[string]any)["createdAt"]; got != created {
		t.Errorf("webhook: createdAt %v, want UTC", got)
	}
	r = e.do(e.strict, "GET", apiPrefix+"/webhooks", "")
	if got := r.decoded(t).(map[string]any)["webhooks"].([]any)[0].(map[string]any)["createdAt"]; got != created {
		t.Errorf("webhook list: createdAt %v, want UTC", got)
	}
	r = e.do(e.strict, "GET", apiPrefix+"/webhooks/"+hookID+"/deliveries", "")
	retried := r.decoded(t).(map[string]any)["deliveries"].([]any)[1].(map[string]any)
	if retried["attemptedAt"] != "2025-06-01T10:00:05Z" || retried["nextRetryAt"] != "2025-06-01T10:00:35Z" {
		t.Errorf("delivery: attemptedAt %v, nextRetryAt %v; want UTC", retried["attemptedAt"], retried["nextRetryAt"])
	}
	if e.farm.deliveries[1].NextRetryAt.Location() != zone {
		t.Error("the API changed the farm's delivery instead of a copy")
	}
}

func TestListQuery(t *testing.T) {
	good := []struct {
		query string
		want  farm.ListQuery
	}{
		{"", farm.ListQuery{Page: 1, PageSize: 10}},
		{"?page=2", farm.ListQuery{Page: 2, PageSize: 10}},
		{"?pageSize=100", farm.ListQuery{Page: 1, PageSize: 100}},
		{"?page=3&pageSize=1&status=rendering", farm.ListQuery{Page: 3, PageSize: 1, Status: farm.StatusRendering}},
		{"?status=suspended", farm.ListQuery{Page: 1, PageSize: 10, Status: farm.StatusSuspended}},
	}
	for _, tc := range good {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.strict, "GET", apiPrefix+"/jobs"+tc.query, "")
		if r.StatusCode != 200 {
			t.Errorf("%q: status %d: %s", tc.query, r.StatusCode, r.body)
			continue
		}
		if calls := e.farm.Calls(); len(calls) != 1 || calls[0].Arg != tc.want {
			t.Errorf("%q: farm asked %+v, want %+v", tc.query, calls, tc.want)
		}
	}

	bad := []struct{ query, field string }{
		{"?page=0", "page"},
		{"?page=-1", "page"},
		{"?page=x", "page"},
		{"?page=1.5", "page"},
		{"?page=99999999999999999999", "page"},
		{"?pageSize=0", "pageSize"},
		{"?pageSize=101", "pageSize"},
		{"?pageSize=ten", "pageSize"},
		{"?status=done", "status"},
		{"?status=RENDERING", "status"},
	}
	for _, tc := range bad {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.lenient, "GET", apiPrefix+"/jobs"+tc.query, "")
		code, msg, field := r.apiError(t)
		if r.StatusCode != 400 || code != farm.CodeInvalidRequest || field != tc.field || !strings.Contains(msg, tc.field) {
			t.Errorf("%q: %d %s %q field %q; want 400 naming %s", tc.query, r.StatusCode, code, msg, field, tc.field)
		}
		if calls := e.farm.Calls(); len(calls) != 0 {
			t.Errorf("%q: farm was asked %+v", tc.query, calls)
		}
	}
}

// TestDownloadsPageParameters: page and pageSize reach the farm as sent,
// either alone; none asks for every file; a page before the first, or a
// page size past farm.MaxDownloadFiles, is 400 naming it, and the farm is
// not asked.
func TestDownloadsPageParameters(t *testing.T) {
	good := []struct {
		query string
		want  farm.DownloadsQuery
	}{
		{"", farm.DownloadsQuery{}},
		{"?page=3&pageSize=500", farm.DownloadsQuery{Page: 3, PageSize: 500}},
		{"?page=2", farm.DownloadsQuery{Page: 2}},
		{"?pageSize=100000", farm.DownloadsQuery{PageSize: 100_000}},
		{"?frames=1001-2000", farm.DownloadsQuery{Frames: &farm.FrameRange{Start: 1001, End: 2000, Step: 1}}},
		{"?frames=", farm.DownloadsQuery{}}, // empty, as if not sent
		{"?frames=7&page=2&pageSize=10", farm.DownloadsQuery{Page: 2, PageSize: 10, Frames: &farm.FrameRange{Start: 7, End: 7, Step: 1}}},
		{"?frames=0-1048574", farm.DownloadsQuery{Frames: &farm.FrameRange{Start: 0, End: farm.MaxFrame, Step: 1}}},
	}
	for _, tc := range good {
		e := newEnv(t, nil, httpapi.Options{})
		if tc.want.PageSize > 0 {
			// The answer, checked against the document, says the page.
			e.farm.downloads = &farm.Downloads{Pagination: &farm.Pagination{Page: 1, PageSize: tc.want.PageSize, Total: 5, TotalPages: 1}}
		}
		r := e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID+"/downloads"+tc.query, "")
		if r.StatusCode != 200 {
			t.Errorf("%q: status %d: %s", tc.query, r.StatusCode, r.body)
			continue
		}
		if calls := e.farm.Calls(); len(calls) != 1 || !reflect.DeepEqual(calls[0].Arg, tc.want) {
			t.Errorf("%q: farm asked %+v, want %+v", tc.query, calls, tc.want)
		}
	}
	bad := []struct{ query, field string }{
		{"?frames=2000-1001", "frames"},
		{"?frames=1-250x5", "frames"},
		{"?frames=-5", "frames"},
		{"?frames=+5", "frames"},
		{"?frames=1048575", "frames"},
		{"?frames=1-99999999999999999999", "frames"},
		{"?frames=all", "frames"},
		{"?frames=1%20-%202", "frames"},
		{"?frames=%E2%91%A0", "frames"},
		{"?frames=1001-2000&page=0", "page"},
		{"?page=0", "page"},
		{"?page=x", "page"},
		{"?page=99999999999999999999", "page"},
		{"?pageSize=0", "pageSize"},
		{"?pageSize=100001", "pageSize"},
	}
	for _, tc := range bad {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.lenient, "GET", apiPrefix+"/jobs/"+jobID+"/downloads"+tc.query, "")
		code, msg, field := r.apiError(t)
		if r.StatusCode != 400 || code != farm.CodeInvalidRequest || field != tc.field || !strings.Contains(msg, tc.field) {
			t.Errorf("%q: %d %s %q field %q; want 400 naming %s", tc.query, r.StatusCode, code, msg, field, tc.field)
		}
		if calls := e.farm.Calls(); len(calls) != 0 {
			t.Errorf("%q: farm was asked %+v", tc.query, calls)
		}
	}
}

// TestProgressFramesParameter: frames=none asks both progress routes for
// the counts alone, and the answer, checked against the document, has no
// frames key; frames=all, or none sent, lists them; anything else is a
// 400 naming the parameter, and the farm is not asked.
func TestProgressFramesParameter(t *testing.T) {
	counted := farm.Progress{JobID: jobID, Status: farm.StatusRendering, FramesTotal: 100_000, FramesCompleted: 5,
		Frames: []farm.FrameProgress{{Frame: 1, Status: farm.FrameCompleted}}}
	for _, path := range []string{"/jobs/" + jobID + "/progress", "/jobs/progress"} {
		for _, tc := range []struct {
			query      string
			want       farm.ProgressQuery
			withFrames bool
		}{
			{"", farm.ProgressQuery{}, true},
			{"?frames=all", farm.ProgressQuery{}, true},
			{"?frames=", farm.ProgressQuery{}, true}, // empty, as if not sent, as every parameter
			{"?frames=none", farm.ProgressQuery{WithoutFrames: true}, false},
			{"?frames=1-1000", farm.ProgressQuery{Frames: &farm.FrameRange{Start: 1, End: 1000, Step: 1}}, true},
			{"?frames=7", farm.ProgressQuery{Frames: &farm.FrameRange{Start: 7, End: 7, Step: 1}}, true},
		} {
			if tc.want.Frames != nil && path == "/jobs/progress" {
				continue // one job's, below
			}
			e := newEnv(t, nil, httpapi.Options{})
			e.farm.progress, e.farm.running = &counted, []farm.Progress{counted}
			r := e.do(e.strict, "GET", apiPrefix+path+tc.query, "")
			if r.StatusCode != 200 {
				t.Errorf("%s%s: status %d: %s", path, tc.query, r.StatusCode, r.body)
				continue
			}
			if calls := e.farm.Calls(); len(calls) != 1 || !reflect.DeepEqual(calls[0].Arg, tc.want) {
				t.Errorf("%s%s: farm asked %+v, want %+v", path, tc.query, calls, tc.want)
			}
			body := strings.TrimSpace(string(r.body))
			if !strings.Contains(body, `"framesTotal":100000`) || strings.Contains(body, `"frames":`) != tc.withFrames {
				t.Errorf("%s%s answered %s; want the counts, and the frames listed: %v", path, tc.query, body, tc.withFrames)
			}
		}
		bad := []string{"?frames=some", "?frames=NONE", "?frames=false", "?frames=1000-1", "?frames=1-10x2", "?frames=1048575", "?frames=-1", "?frames=1-"}
		if path == "/jobs/progress" {
			// A span is one job's: the list of jobs refuses it, saying where to ask.
			bad = append(bad, "?frames=1-1000")
		}
		for _, query := range bad {
			e := newEnv(t, nil, httpapi.Options{})
			r := e.do(e.lenient, "GET", apiPrefix+path+query, "")
			code, msg, field := r.apiError(t)
			if r.StatusCode != 400 || code != farm.CodeInvalidRequest || field != "frames" || !strings.Contains(msg, "none") {
				t.Errorf("%s%s: %d %s %q field %q; want 400 naming frames and its values", path, query, r.StatusCode, code, msg, field)
			}
			if calls := e.farm.Calls(); len(calls) != 0 {
				t.Errorf("%s%s: farm was asked %+v", path, query, calls)
			}
		}
	}
}

// TestUsageBoundsAreGivenOnlyWhenSent: a usage request's from and to
// reach the farm as sent, whatever time they name, the zero time
// (0001-01-01) and years the farm refuses included, and a bound not sent
// as not given, for the farm to fill in.
func TestUsageBoundsAreGivenOnlyWhenSent(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  usageBounds
	}{
		{"", usageBounds{}},
		{"?groupBy=job", usageBounds{}},
		{"?from=0001-01-01", usageBounds{From: "0001-01-01T00:00:00Z"}},
		{"?to=0001-01-01T00:00:00Z", usageBounds{To: "0001-01-01T00:00:00Z"}},
		{"?to=0000-01-02", usageBounds{To: "0000-01-02T00:00:00Z"}},
		{"?from=0000-01-01T00:00:00%2B01:00&to=0000-01-02T00:00:00Z", usageBounds{From: "0000-01-01T00:00:00+01:00", To: "0000-01-02T00:00:00Z"}},
		{"?from=9999-12-31T00:00:00-02:00&to=9999-12-31T23:00:00-02:00", usageBounds{From: "9999-12-31T00:00:00-02:00", To: "9999-12-31T23:00:00-02:00"}},
	} {
		e := newEnv(t, nil, httpapi.Options{})
		if r := e.do(e.lenient, "GET", apiPrefix+"/usage"+tc.query, ""); r.StatusCode != 200 {
			t.Errorf("%q: status %d: %s", tc.query, r.StatusCode, r.body)
			continue
		}
		if calls := e.farm.Calls(); len(calls) != 1 || calls[0].Arg != tc.want {
			t.Errorf("%q: farm asked %+v, want the period %+v", tc.query, calls, tc.want)
		}
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", apiPrefix + "/nope", 404, ""},
		{"GET", apiPrefix + "/jobs/" + jobID + "/frames", 404, ""},
		{"GET", "/api/external/v2/jobs", 404, ""},
		{"GET", "/", 404, ""},
		{"PUT", apiPrefix + "/jobs/" + jobID, 405, "DELETE, GET, HEAD, PATCH"},
		{"GET", apiPrefix + "/uploads", 405, "POST"},
		{"PUT", apiPrefix + "/jobs", 405, "GET, HEAD, POST"},
		{"GET", apiPrefix + "/jobs/" + jobID + "/render", 405, "POST"},
		// {id} matches "progress" too, so DELETE is allowed there; it is
		// answered 404, as every id that is not a UUID is.
		{"POST", apiPrefix + "/jobs/progress", 405, "DELETE, GET, HEAD, PATCH"},
		{"POST", apiPrefix + "/jobs/" + jobID + "/log", 405, "GET, HEAD"},
		{"DELETE", apiPrefix + "/webhooks", 405, "GET, HEAD, POST"},
		{"PUT", apiPrefix + "/webhooks/" + hookID, 405, "DELETE, GET, HEAD"},
		{"GET", apiPrefix + "/webhooks/" + hookID + "/rotate-secret", 405, "POST"},
		{"DELETE", apiPrefix + "/webhooks/" + hookID + "/deliveries", 405, "GET, HEAD"},
		{"GET", apiPrefix + "/webhooks/" + hookID + "/secret", 404, ""},
	}
	for _, tc := range cases {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.lenient, tc.method, tc.path, "")
		code, msg, _ := r.apiError(t)
		if r.StatusCode != tc.status || code == "" || msg == "" {
			t.Errorf("%s %s: %d %s; want %d with a JSON error", tc.method, tc.path, r.StatusCode, r.body, tc.status)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if got := r.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

// A path that is not a UUID cannot name a job or a webhook, and the farm
// should not be asked about it. Every route with an id is tried.
func TestNonUUIDIDIsNotFound(t *testing.T) {
	for _, tc := range routeCases() {
		what := "job"
		valid := jobID
		if strings.Contains(tc.path, hookID) {
			what, valid = "webhook", hookID
		}
		if !strings.Contains(tc.path, valid) {
			continue
		}
		for _, id := range []string{"42", "not-a-uuid", strings.ToUpper(valid) + "0", strings.Replace(valid, "-", "x", 1)} {
			e := newEnv(t, nil, httpapi.Options{})
			path := strings.Replace(tc.path, valid, id, 1)
			r := e.do(e.lenient, tc.method, apiPrefix+path, tc.body)
			code, msg, _ := r.apiError(t)
			if r.StatusCode != 404 || code != farm.CodeNotFound || !strings.Contains(msg, "no "+what) {
				t.Errorf("%s %s: %d %s, want 404 NOT_FOUND about a %s", tc.method, path, r.StatusCode, r.body, what)
			}
			if calls := e.farm.Calls(); len(calls) != 0 {
				t.Errorf("%s %s: farm asked %+v", tc.method, path, calls)
			}
		}
	}
}

func TestObjects(t *testing.T) {
	var gotPath, gotQuery string
	objects := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write([]byte("png"))
	})
	e := newEnv(t, nil, httpapi.Options{Objects: objects})
	r := e.do(e.strict, "GET", "/objects/jobs/x/0001.png?expires=1&sig=ab", "", "")
	if r.StatusCode != 200 || string(r.body) != "png" {
		t.Fatalf("object: %d %s", r.StatusCode, r.body)
	}
	if gotPath != "/objects/jobs/x/0001.png" || gotQuery != "expires=1&sig=ab" {
		t.Errorf("object handler saw %q ? %q", gotPath, gotQuery)
	}
	if strings.Contains(e.log.String(), "sig=ab") {
		t.Errorf("an object URL's signature was logged:\n%s", e.log)
	}

	e = newEnv(t, nil, httpapi.Options{})
	r = e.do(e.strict, "GET", "/objects/jobs/x/0001.png", "", "")
	if code, _, _ := r.apiError(t); r.StatusCode != 404 || code != farm.CodeNotFound {
		t.Errorf("without an object handler: %d %s", r.StatusCode, r.body)
	}
}

// contextFarm checks that the principal also travels in the context.
type contextFarm struct {
	*fakeFarm
	got   farm.Principal
	found bool
}

func (f *contextFarm) GetJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	f.got, f.found = httpapi.PrincipalFromContext(ctx)
	return f.fakeFarm.GetJob(ctx, p, id)
}

func TestPrincipalInContext(t *testing.T) {
	f := &contextFarm{fakeFarm: fullFarm()}
	srv := httptest.NewServer(httpapi.New(f, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	c := &http.Client{Transport: apitest.ValidatingTransport(t, srv.Client().Transport)}
	req, _ := http.NewRequest("GET", srv.URL+apiPrefix+"/jobs/"+jobID, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !f.found || f.got != testPrincipal {
		t.Errorf("principal in context: %+v %v, want %+v", f.got, f.found, testPrincipal)
	}
}
