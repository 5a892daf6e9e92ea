package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{})
	r := e.do(e.strict, "GET", apiPrefix+"/openapi.json", "", "")
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	if !bytes.Equal(r.body, httpapi.OpenAPIJSON()) {
		t.Error("the served document differs from OpenAPIJSON")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.body)
	if err != nil {
		t.Fatalf("load served document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("served document is invalid: %v", err)
	}
	if doc.Servers[0].URL != httpapi.BasePath {
		t.Errorf("server URL %q", doc.Servers[0].URL)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Scheme != "bearer" {
		t.Error("no bearer security scheme")
	}
	h := doc.Paths.Value("/jobs/{id}/render").Post.Responses.Status(200).Value.Headers["X-Idempotent-Replay"]
	if h == nil {
		t.Error("render's 200 does not describe X-Idempotent-Replay")
	}
}

func schema(t *testing.T, doc *openapi3.T, name string) *openapi3.Schema {
	t.Helper()
	ref := doc.Components.Schemas[name]
	if ref == nil {
		t.Fatalf("no schema %s", name)
	}
	return ref.Value
}

// TestSchemasMatchFarmTypes keeps the document and the farm's types in
// step: every field the server writes is described, nothing described is
// missing from what it writes, fields always written are required, and
// only pointers are nullable. A field added to a farm type fails here until
// the document says what it is.
func TestSchemasMatchFarmTypes(t *testing.T) {
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		value  any
		schema string
		// request schemas describe what clients send, so which fields are
		// required is the API's rule, not a consequence of the Go type.
		request bool
	}{
		{farm.Job{}, "Job", false},
		{farm.JobOutput{}, "JobOutput", false},
		{farm.FailedReason{}, "FailedReason", false},
		{farm.RenderConfig{}, "RenderConfig", true},
		{farm.OutputSettings{}, "OutputSettings", true},
		{farm.FinalConfig{}, "FinalConfig", false},
		{farm.FinalOutputSettings{}, "FinalOutputSettings", false},
		{farm.SceneFile{}, "SceneFile", false},
		{farm.Analysis{}, "Analysis", false},
		{farm.Scene{}, "Scene", false},
		{farm.ExternalFile{}, "ExternalFile", false},
		{farm.Library{}, "Library", false},
		{farm.Warning{}, "Warning", false},
		{farm.Progress{}, "Progress", false},
		{farm.FrameProgress{}, "FrameProgress", false},
		{farm.Downloads{}, "Downloads", false},
		{farm.Transforms{}, "Transforms", false},
		{farm.FileOutput{}, "FileOutput", false},
		{farm.VideoOutput{}, "VideoOutput", false},
		{farm.UploadTicket{}, "UploadTicket", false},
		{farm.JobPage{}, "JobList", false},
		{farm.Pagination{}, "Pagination", false},
		{farm.JobLog{}, "JobLog", false},
		{farm.BlenderOffers{}, "BlenderVersions", false},
		{farm.Webhook{}, "Webhook", false},
		{farm.WebhookDelivery{}, "WebhookDelivery", false},
		{webhook.RenderComplete{}, "RenderCompleteEvent", false},
		{webhook.Outputs{}, "RenderCompleteOutputs", false},
		{webhook.RenderFail{}, "RenderFailEvent", false},
		{webhook.StatusChange{}, "StatusChangeEvent", false},
	}
	for _, tc := range cases {
		side := apitest.Server
		if tc.request {
			side = apitest.ServerReads
		}
		apitest.CheckSchema(t, doc, tc.value, tc.schema, side)
	}
}

func enumOf(t *testing.T, doc *openapi3.T, path ...string) []string {
	t.Helper()
	s := schema(t, doc, path[0])
	for _, p := range path[1:] {
		if p == "[]" {
			s = s.Items.Value
			continue
		}
		ref := s.Properties[p]
		if ref == nil {
			t.Fatalf("%v: no property %s", path, p)
		}
		s = ref.Value
	}
	var out []string
	for _, v := range s.Enum {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func limitOf(t *testing.T, doc *openapi3.T, schemaName, prop string) *openapi3.Schema {
	t.Helper()
	return schema(t, doc, schemaName).Properties[prop].Value
}

// TestSchemaEnumsAndLimitsMatchFarm keeps the document's enumerations and
// limits equal to the farm's own lists and constants.
func TestSchemaEnumsAndLimitsMatchFarm(t *testing.T) {
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	var statuses, frameStatuses []string
	for _, s := range farm.AllStatuses {
		statuses = append(statuses, string(s))
	}
	for _, s := range farm.AllFrameStatuses {
		frameStatuses = append(frameStatuses, string(s))
	}
	enums := []struct {
		path []string
		want []string
	}{
		{[]string{"JobStatus"}, statuses},
		{[]string{"RenderConfig", "colorManagementPreset"}, farm.ColorPresets},
		{[]string{"RenderConfig", "renderEngine"}, farm.RenderEngines},
		{[]string{"RenderConfig", "outputFormat"}, farm.OutputFormats},
		{[]string{"OutputSettings", "colorMode"}, farm.ColorModes},
		{[]string{"OutputSettings", "colorDepth"}, farm.ColorDepths},
		{[]string{"OutputSettings", "exrCodec"}, farm.ExrCodecs},
		{[]string{"OutputSettings", "tiffCodec"}, farm.TiffCodecs},
		{[]string{"FinalConfig", "colorManagementPreset"}, farm.ColorPresets},
		{[]string{"FrameProgress", "status"}, frameStatuses},
		{[]string{"FailedReason", "type"}, []string{farm.FailValidation, farm.FailRender, farm.FailFinalize}},
		{[]string{"UploadRequest", "fileType"}, []string{farm.FileTypeBlend, farm.FileTypeZip}},
		{[]string{"SceneFile", "fileType"}, []string{farm.FileTypeBlend, farm.FileTypeZip}},
		{[]string{"WebhookEventName"}, webhook.Events},
		{[]string{"CreateWebhookRequest", "events", "[]"}, webhook.Events},
		{[]string{"Webhook", "events", "[]"}, webhook.Events},
		{[]string{"WebhookDelivery", "event"}, webhook.Events},
		{[]string{"RenderCompleteEvent", "event"}, []string{webhook.EventRenderComplete}},
		{[]string{"RenderCompleteEvent", "status"}, []string{string(farm.StatusCompleted)}},
		{[]string{"RenderFailEvent", "event"}, []string{webhook.EventRenderFail}},
		{[]string{"RenderFailEvent", "status"}, []string{string(farm.StatusFailed)}},
		{[]string{"StatusChangeEvent", "event"}, []string{webhook.EventStatusChange}},
	}
	for _, tc := range enums {
		if got := enumOf(t, doc, tc.path...); !slices.Equal(got, tc.want) {
			t.Errorf("%s: enum %v, want %v", strings.Join(tc.path, "."), got, tc.want)
		}
	}

	limits := []struct {
		schema, prop string
		max          float64
	}{
		{"RenderConfig", "sampleCount", farm.MaxSampleCount},
		{"RenderConfig", "fps", farm.MaxFPS},
		{"RenderConfig", "chunkSize", farm.MaxChunkSize},
		{"RenderConfig", "tileSize", farm.MaxResolution},
		{"Pagination", "pageSize", farm.MaxPageSize},
	}
	for _, tc := range limits {
		if s := limitOf(t, doc, tc.schema, tc.prop); s.Max == nil || *s.Max != tc.max {
			t.Errorf("%s.%s: maximum %v, want %v", tc.schema, tc.prop, s.Max, tc.max)
		}
	}
	if s := limitOf(t, doc, "RenderConfig", "resolution").Items.Value; s.Max == nil || *s.Max != farm.MaxResolution {
		t.Errorf("resolution items: maximum %v, want %d", s.Max, farm.MaxResolution)
	}
	if s := limitOf(t, doc, "RenderConfig", "notes"); s.MaxLength == nil || *s.MaxLength != farm.MaxNotesLength {
		t.Errorf("notes: maxLength %v, want %d", s.MaxLength, farm.MaxNotesLength)
	}
	for _, name := range []string{"CreateWebhookRequest", "Webhook"} {
		if s := limitOf(t, doc, name, "url"); s.MaxLength == nil || *s.MaxLength != webhook.MaxURLLength {
			t.Errorf("%s.url: maxLength %v, want %d", name, s.MaxLength, webhook.MaxURLLength)
		}
	}
	if s := limitOf(t, doc, "WebhookList", "webhooks"); s.MaxItems == nil || *s.MaxItems != farm.MaxWebhooksPerWorkspace {
		t.Errorf("WebhookList.webhooks: maxItems %v, want %d", s.MaxItems, farm.MaxWebhooksPerWorkspace)
	}
	var pageSize *openapi3.Schema
	for _, p := range doc.Paths.Value("/jobs").Get.Parameters {
		if p.Value.Name == "pageSize" {
			pageSize = p.Value.Schema.Value
		}
	}
	if pageSize == nil || *pageSize.Max != farm.MaxPageSize || pageSize.Default != float64(farm.DefaultPageSize) {
		t.Errorf("pageSize parameter: %+v", pageSize)
	}
}
