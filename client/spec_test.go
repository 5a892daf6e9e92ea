package client_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// TestTypesMatchTheOpenAPIDocument keeps the client's types in step with
// the document the server is checked against: a field the client reads
// that the server does not write (a renamed one, say) would stay empty,
// and a property the client does not know would be lost to its users.
func TestTypesMatchTheOpenAPIDocument(t *testing.T) {
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value  any
		schema string
	}{
		{client.Job{}, "Job"},
		{client.JobOutput{}, "JobOutput"},
		{client.FailedReason{}, "FailedReason"},
		{client.SceneFile{}, "SceneFile"},
		{client.Analysis{}, "Analysis"},
		{client.Scene{}, "Scene"},
		{client.ExternalFile{}, "ExternalFile"},
		{client.Library{}, "Library"},
		{client.Warning{}, "Warning"},
		{client.RenderConfig{}, "RenderConfig"},
		{client.OutputSettings{}, "OutputSettings"},
		{client.FinalConfig{}, "FinalConfig"},
		{client.FinalOutputSettings{}, "FinalOutputSettings"},
		{client.Progress{}, "Progress"},
		{client.FrameProgress{}, "FrameProgress"},
		{client.BlenderVersions{}, "BlenderVersions"},
		{client.Downloads{}, "Downloads"},
		{client.Transforms{}, "Transforms"},
		{client.FileOutput{}, "FileOutput"},
		{client.VideoOutput{}, "VideoOutput"},
		{client.UploadTicket{}, "UploadTicket"},
		{client.JobList{}, "JobList"},
		{client.Pagination{}, "Pagination"},
		{client.Webhook{}, "Webhook"},
		{client.WebhookDelivery{}, "WebhookDelivery"},
	} {
		apitest.CheckSchema(t, doc, tc.value, tc.schema, apitest.Client)
	}
}

// TestWebhookEventHoldsEveryEventsFields: WebhookEvent reads any of the
// three events, so its fields are the union of theirs.
func TestWebhookEventHoldsEveryEventsFields(t *testing.T) {
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	described := map[string]bool{}
	for _, name := range []string{"RenderCompleteEvent", "RenderFailEvent", "StatusChangeEvent"} {
		for prop := range doc.Components.Schemas[name].Value.Properties {
			described[prop] = true
		}
	}
	typ := reflect.TypeFor[client.WebhookEvent]()
	read := map[string]bool{}
	for field := range typ.Fields() {
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		read[name] = true
	}
	for name := range described {
		if !read[name] {
			t.Errorf("an event has %q, which WebhookEvent does not read", name)
		}
	}
	for name := range read {
		if !described[name] {
			t.Errorf("WebhookEvent reads %q, which no event has", name)
		}
	}
}
