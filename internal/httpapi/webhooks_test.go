package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// The secret signs deliveries; an answer that shows it where the document
// says it does not would leak it to anyone with read access to the API.
func TestWebhookSecretShownOnlyOnCreateAndRotate(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{})
	for _, tc := range routeCases() {
		if !strings.HasPrefix(tc.path, "/webhooks") {
			continue
		}
		r := e.do(e.strict, tc.method, apiPrefix+tc.path, tc.body)
		want := tc.call.Method == "CreateWebhook" || tc.call.Method == "RotateWebhookSecret"
		if shown := strings.Contains(string(r.body), testSecret); shown != want {
			t.Errorf("%s %s: secret shown %v, want %v: %s", tc.method, tc.path, shown, want, r.body)
		}
		if !want && strings.Contains(string(r.body), `"secret"`) {
			t.Errorf("%s %s: the answer has a secret field: %s", tc.method, tc.path, r.body)
		}
	}
	if e.farm.webhook.Secret != testSecret || e.farm.webhooks[0].Secret != testSecret {
		t.Error("the API changed the farm's webhook instead of a copy")
	}
}

// TestDeliveriesMatchTheDocument sends every event the way the farm does,
// with webhook.Sender and the payload types the engine fills in, to a
// receiver that checks what arrives against the callback of POST /webhooks,
// signature included.
func TestDeliveriesMatchTheDocument(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: %v", err)
		}
		apitest.CheckDelivery(t, r, body, testSecret)
		mu.Lock()
		got = append(got, r.Header.Get(webhook.HeaderEvent))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	at := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	frames := []string{
		"http://farm.example/objects/jobs/" + jobID + "/frames/0001.png?expires=1&sig=ab",
		"http://farm.example/objects/jobs/" + jobID + "/frames/0002.png?expires=1&sig=cd",
	}
	events := []struct {
		event   string
		payload any
	}{
		{webhook.EventRenderComplete, webhook.RenderComplete{Event: webhook.EventRenderComplete, Status: string(farm.StatusCompleted),
			JobID: jobID, WorkspaceID: testPrincipal.WorkspaceID, CompletedAt: at, Outputs: &webhook.Outputs{Frames: frames}}},
		{webhook.EventRenderComplete, webhook.RenderComplete{Event: webhook.EventRenderComplete, Status: string(farm.StatusCompleted),
			JobID: jobID, WorkspaceID: testPrincipal.WorkspaceID, CompletedAt: at}},
		{webhook.EventRenderFail, webhook.RenderFail{Event: webhook.EventRenderFail, Status: string(farm.StatusFailed),
			JobID: jobID, WorkspaceID: testPrincipal.WorkspaceID, FailedAt: at,
			FailedReason: &farm.FailedReason{Name: "Render failed", Type: farm.FailRender, Message: "Blender crashed on frame 2; see GET /jobs/{id}/log"}}},
		{webhook.EventStatusChange, webhook.StatusChange{Event: webhook.EventStatusChange, Status: string(farm.StatusRendering),
			PreviousStatus: string(farm.StatusBooting), JobID: jobID, WorkspaceID: testPrincipal.WorkspaceID, ChangedAt: at}},
	}
	sender := webhook.NewSender(true) // the receiver is on loopback
	var want []string
	for _, ev := range events {
		body, err := json.Marshal(ev.payload)
		if err != nil {
			t.Fatal(err)
		}
		res, err := sender.Send(context.Background(), webhook.Delivery{
			URL: receiver.URL + "/renderfarm?team=a", Secret: testSecret,
			DeliveryID: "a7e1c0de-2b3c-4d5e-8f90-1a2b3c4d5e6f", Event: ev.event, Body: body,
		})
		if err != nil || res.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %+v %v", ev.event, res, err)
		}
		want = append(want, ev.event)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the receiver got %v, want %v", got, want)
	}
}

// Receivers learn from the document which headers to read; every header a
// delivery carries must be described there.
func TestCallbackDescribesEveryDeliveryHeader(t *testing.T) {
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Value("/webhooks").Post
	cb := op.Callbacks["jobEvent"]
	if cb == nil || cb.Value.Len() != 1 {
		t.Fatalf("POST /webhooks has no callback jobEvent with one URL: %+v", op.Callbacks)
	}
	item := cb.Value.Value("{$request.body#/url}")
	if item == nil || item.Post == nil {
		t.Fatal("the callback does not POST to the webhook's url")
	}
	described := map[string]bool{}
	for _, p := range item.Post.Parameters {
		if p.Value.In == "header" && p.Value.Required {
			described[p.Value.Name] = true
		}
	}
	for _, h := range []string{webhook.HeaderTimestamp, webhook.HeaderSignature, webhook.HeaderDeliveryID, webhook.HeaderEvent} {
		if !described[h] {
			t.Errorf("the callback does not describe the header %s as required", h)
		}
	}
	if item.Post.Security == nil || len(*item.Post.Security) != 0 {
		t.Error("the callback must not ask receivers for the API key")
	}
}
