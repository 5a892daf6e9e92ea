package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
)

func TestBodyLimit(t *testing.T) {
	big := `{"slug": "` + strings.Repeat("a", httpapi.DefaultMaxBodyBytes) + `"}`

	t.Run("default 1 MiB", func(t *testing.T) {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.strict, "POST", apiPrefix+"/jobs", big)
		code, msg, _ := r.apiError(t)
		if r.StatusCode != 413 || code != farm.CodeTooLarge || !strings.Contains(msg, "1 MiB") {
			t.Errorf("%d %s %q, want 413 PAYLOAD_TOO_LARGE naming 1 MiB", r.StatusCode, code, msg)
		}
		if calls := e.farm.Calls(); len(calls) != 0 {
			t.Errorf("farm asked %+v", calls)
		}
	})

	t.Run("exactly at the limit", func(t *testing.T) {
		e := newEnv(t, nil, httpapi.Options{MaxBodyBytes: 64})
		body := `{"slug": "` + testSlug + `"}`
		body += strings.Repeat(" ", 64-len(body))
		if r := e.do(e.strict, "POST", apiPrefix+"/jobs", body); r.StatusCode != 201 {
			t.Errorf("a body of exactly the limit: %d %s", r.StatusCode, r.body)
		}
	})

	// Without a Content-Length, the limit is found while reading.
	t.Run("streamed", func(t *testing.T) {
		e := newEnv(t, nil, httpapi.Options{MaxBodyBytes: 4 << 10})
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, `{"slug": "`+strings.Repeat("a", 8<<10)+`"}`)
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.srv.URL+apiPrefix+"/jobs", pr)
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.strict.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := reply{resp, b}
		code, msg, _ := r.apiError(t)
		if r.StatusCode != 413 || code != farm.CodeTooLarge || !strings.Contains(msg, "4 KiB") {
			t.Errorf("%d %s %q, want 413 naming 4 KiB", r.StatusCode, code, msg)
		}
	})
}

func TestMalformedJSON(t *testing.T) {
	cases := []struct {
		name, body string
		msgHas     []string
	}{
		{"empty", "", []string{"empty", `"slug"`}},
		{"blank", "  \n", []string{"empty"}},
		{"not JSON", "slug=abc", []string{"not valid JSON", "offset 1"}},
		{"trailing comma", `{"slug": "a",}`, []string{"not valid JSON", "offset 14"}},
		{"cut short", `{"slug": "a"`, []string{"ends in the middle", "offset 12"}},
		{"two objects", `{"slug": "a"} {"slug": "b"}`, []string{"more after", "offset 14"}},
		{"trailing garbage", `{"slug": "a"}x`, []string{"offset 13"}},
		{"array", `["a"]`, []string{"must be a JSON object", "an array"}},
		{"string", `"a"`, []string{"must be a JSON object", "a string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, httpapi.Options{})
			r := e.do(e.lenient, "POST", apiPrefix+"/jobs", tc.body)
			code, msg, _ := r.apiError(t)
			if r.StatusCode != 400 || code != farm.CodeInvalidJSON {
				t.Fatalf("%d %s, want 400 INVALID_JSON", r.StatusCode, r.body)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			if calls := e.farm.Calls(); len(calls) != 0 {
				t.Errorf("farm asked %+v", calls)
			}
		})
	}
}

func TestTypeErrorsNameTheField(t *testing.T) {
	cases := []struct {
		path, body, field, msg string
	}{
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "sampleCount": "many"}}`,
			"requestedRenderConfig.sampleCount", "requestedRenderConfig.sampleCount must be a number, not a string"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "sampleCount": 2.5}}`,
			"requestedRenderConfig.sampleCount", "must be a whole number, not 2.5"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "sampleCount": 1e30}}`,
			"requestedRenderConfig.sampleCount", "fits in 64 bits"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "denoisingEnabled": "yes"}}`,
			"requestedRenderConfig.denoisingEnabled", "must be true or false, not a string"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "frameRanges": "1-10"}}`,
			"requestedRenderConfig.frameRanges", "must be an array, not a string"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "outputSettings": {"quality": "high"}}}`,
			"requestedRenderConfig.outputSettings.quality", "must be a number"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": 1}}`,
			"requestedRenderConfig.colorManagementPreset", "must be a string, not a number"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": "default"}`,
			"requestedRenderConfig", "must be an object, not a string"},
		{"/jobs", `{"slug": 5}`, "slug", "slug must be a string, not a number"},
		{"/uploads", `{"fileName": ["a.blend"], "fileType": "blend"}`, "fileName", "fileName must be a string, not an array"},
		{"/webhooks", `{"url": 443, "events": ["onRenderComplete"]}`, "url", "url must be a string, not a number"},
		{"/webhooks", `{"url": "https://pipeline.example.com/hook", "events": "onRenderComplete"}`, "events", "events must be an array, not a string"},
		{"/webhooks", `{"url": "https://pipeline.example.com/hook", "events": {"onRenderComplete": true}}`, "events", "events must be an array, not an object"},
		// A wrong item is told from a wrong array.
		{"/webhooks", `{"url": "https://pipeline.example.com/hook", "events": ["onRenderComplete", 1]}`, "events", "every item of events must be a string, not a number"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "frameRanges": [1]}}`,
			"requestedRenderConfig.frameRanges", "every item of requestedRenderConfig.frameRanges must be a string, not a number"},
		{"/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"colorManagementPreset": "default", "resolution": [1920.5, 1080]}}`,
			"requestedRenderConfig.resolution", "every item of requestedRenderConfig.resolution must be a whole number, not 1920.5"},
	}
	for _, tc := range cases {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.lenient, "POST", apiPrefix+tc.path, tc.body)
		code, msg, field := r.apiError(t)
		if r.StatusCode != 400 || code != farm.CodeInvalidRequest || field != tc.field || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %s %q field %q; want 400 on %s saying %q", tc.body, r.StatusCode, code, msg, field, tc.field, tc.msg)
		}
		if calls := e.farm.Calls(); len(calls) != 0 {
			t.Errorf("%s: farm asked %+v", tc.body, calls)
		}
	}
}

func TestRequiredFields(t *testing.T) {
	cases := []struct {
		name, path, body, code, field, msgHas string
	}{
		{"upload without fileName", "/uploads", `{"fileType": "blend"}`, farm.CodeInvalidRequest, "fileName", `"fileName": "scene.blend"`},
		{"upload with empty fileName", "/uploads", `{"fileName": "", "fileType": "blend"}`, farm.CodeInvalidRequest, "fileName", "fileName is required"},
		{"upload without fileType", "/uploads", `{"fileName": "scene.blend"}`, farm.CodeInvalidRequest, "fileType", `"blend"`},
		{"job without slug", "/jobs", `{}`, farm.CodeInvalidRequest, "slug", "POST /uploads"},
		{"job with null body", "/jobs", `null`, farm.CodeInvalidRequest, "slug", "slug is required"},
		{"render without config", "/jobs/" + jobID + "/render", `{}`, farm.CodeInvalidConfig, "requestedRenderConfig", "colorManagementPreset"},
		{"render with null config", "/jobs/" + jobID + "/render", `{"requestedRenderConfig": null}`, farm.CodeInvalidConfig, "requestedRenderConfig", "required"},
		{"render with empty config", "/jobs/" + jobID + "/render", `{"requestedRenderConfig": {}}`, farm.CodeInvalidConfig, "requestedRenderConfig", "colorManagementPreset"},
		{"render with only unknown fields", "/jobs/" + jobID + "/render", `{"requestedRenderConfig": {"turbo": true}}`, farm.CodeInvalidConfig, "requestedRenderConfig", "no known field"},
		{"webhook without url", "/webhooks", `{"events": ["onRenderComplete"]}`, farm.CodeInvalidRequest, "url", "https://"},
		{"webhook with empty url", "/webhooks", `{"url": "", "events": ["onRenderComplete"]}`, farm.CodeInvalidRequest, "url", "url is required"},
		{"webhook with null url", "/webhooks", `{"url": null, "events": ["onRenderComplete"]}`, farm.CodeInvalidRequest, "url", "url is required"},
		{"webhook without events", "/webhooks", `{"url": "https://pipeline.example.com/hook"}`, farm.CodeInvalidRequest, "events", `"onRenderComplete", "onRenderFail" and "onStatusChange"`},
		{"webhook with no events", "/webhooks", `{"url": "https://pipeline.example.com/hook", "events": []}`, farm.CodeInvalidRequest, "events", "events is required"},
		{"webhook with null events", "/webhooks", `{"url": "https://pipeline.example.com/hook", "events": null}`, farm.CodeInvalidRequest, "events", "events is required"},
		{"webhook with null body", "/webhooks", `null`, farm.CodeInvalidRequest, "url", "url is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, httpapi.Options{})
			r := e.do(e.lenient, "POST", apiPrefix+tc.path, tc.body)
			code, msg, field := r.apiError(t)
			if r.StatusCode != 400 || code != tc.code || field != tc.field || !strings.Contains(msg, tc.msgHas) {
				t.Errorf("%d %s %q field %q; want 400 %s on %s saying %q", r.StatusCode, code, msg, field, tc.code, tc.field, tc.msgHas)
			}
			if calls := e.farm.Calls(); len(calls) != 0 {
				t.Errorf("farm asked %+v", calls)
			}
		})
	}
}

// Clients written for Renderjuice may send fields this farm does not know.
func TestUnknownFieldsAreIgnored(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{})
	r := e.do(e.strict, "POST", apiPrefix+"/jobs", `{"slug": "`+testSlug+`", "projectId": "p-1", "priority": {"level": 3}}`)
	if r.StatusCode != 201 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	r = e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/render",
		`{"requestedRenderConfig": {"colorManagementPreset": "default", "cloudRegion": "eu"}, "dryRun": false}`)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	calls := e.farm.Calls()
	if cfg := calls[len(calls)-1].Arg.(*farm.RenderConfig); cfg.ColorManagementPreset == nil || *cfg.ColorManagementPreset != "default" {
		t.Errorf("render config reached the farm as %+v", cfg)
	}
}
