package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// receiver is a webhook receiver that records every delivery and can be
// told to fail the first attempts of an event.
type receiver struct {
	mu         sync.Mutex
	deliveries []delivery
	failFirst  map[string]int // event -> attempts to answer 500
	srv        *httptest.Server
}

type delivery struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, failFirst map[string]int) *receiver {
	r := &receiver{failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		event := req.Header.Get(client.HeaderEvent)
		status := http.StatusOK
		if r.failFirst[event] > 0 {
			r.failFirst[event]--
			status = http.StatusInternalServerError
		}
		r.deliveries = append(r.deliveries, delivery{header: req.Header.Clone(), body: body, status: status})
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) of(event string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.deliveries {
		if d.header.Get(client.HeaderEvent) == event {
			out = append(out, d)
		}
	}
	return out
}

// TestWebhooksAreSignedAndRetried renders a job with a receiver that fails
// onRenderComplete twice: the event arrives on the third attempt with the
// same body and delivery id, every delivery verifies with the secret, and
// onStatusChange reports each step.
func TestWebhooksAreSignedAndRetried(t *testing.T) {
	f := startFarm(t, "--webhook-allow-private", "--webhook-first-retry", "200ms")
	c := f.client("studio")
	ctx := testContext(t)
	rcv := newReceiver(t, map[string]int{client.EventRenderComplete: 2})

	hook, err := c.CreateWebhook(ctx, rcv.srv.URL+"/renderfarm", []string{client.EventRenderComplete, client.EventRenderFail, client.EventStatusChange})
	if err != nil {
		t.Fatal(err)
	}
	if hook.Secret == "" {
		t.Fatal("the new webhook has no secret")
	}
	if got, err := c.GetWebhook(ctx, hook.ID); err != nil || got.Secret != "" || got.URL != hook.URL {
		t.Errorf("get webhook: %+v %v; want it without its secret", got, err)
	}

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-2"}})
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s", done.Status)
	}

	deadline := time.Now().Add(60 * time.Second)
	for len(rcv.of(client.EventRenderComplete)) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	complete := rcv.of(client.EventRenderComplete)
	if len(complete) != 3 {
		t.Fatalf("onRenderComplete arrived %d times, want 3 (two refused, then accepted)", len(complete))
	}
	for i, d := range complete {
		if !bytes.Equal(d.body, complete[0].body) || d.header.Get(client.HeaderDeliveryID) != complete[0].header.Get(client.HeaderDeliveryID) {
			t.Errorf("attempt %d differs from the first in body or delivery id", i+1)
		}
	}
	ev, err := client.VerifyWebhook(hook.Secret, complete[2].header, complete[2].body, 0)
	if err != nil {
		t.Fatalf("verify onRenderComplete: %v", err)
	}
	if ev.Status != client.StatusCompleted || ev.JobID != job.ID || ev.WorkspaceID != done.WorkspaceID || ev.CompletedAt == nil || ev.Outputs == nil || len(ev.Outputs.Frames) != 2 {
		t.Fatalf("onRenderComplete = %+v", ev)
	}
	frame := filepath.Join(t.TempDir(), "frame.png")
	if _, err := c.DownloadFile(ctx, ev.Outputs.Frames[0], frame); err != nil {
		t.Fatalf("download the webhook's frame URL: %v", err)
	}
	checkPNG(t, frame, 64, 36)
	if _, err := client.VerifyWebhook("another secret", complete[2].header, complete[2].body, 0); err == nil {
		t.Error("a delivery verified with the wrong secret")
	}

	// Deliveries run side by side, so two moves close together (validated,
	// then booting at the render request) may arrive in either order: a
	// receiver orders them by changedAt, as here.
	var changes []*client.WebhookEvent
	for _, d := range rcv.of(client.EventStatusChange) {
		ev, err := client.VerifyWebhook(hook.Secret, d.header, d.body, 0)
		if err != nil {
			t.Fatalf("verify onStatusChange: %v", err)
		}
		if ev.ChangedAt == nil {
			t.Fatalf("onStatusChange to %s has no changedAt", ev.Status)
		}
		changes = append(changes, ev)
	}
	slices.SortStableFunc(changes, func(a, b *client.WebhookEvent) int { return a.ChangedAt.Compare(*b.ChangedAt) })
	var steps []client.Status
	for _, ev := range changes {
		if len(steps) > 0 && ev.PreviousStatus != steps[len(steps)-1] {
			t.Errorf("onStatusChange to %s says previous %s, want %s", ev.Status, ev.PreviousStatus, steps[len(steps)-1])
		}
		steps = append(steps, ev.Status)
	}
	want := []client.Status{client.StatusValidating, client.StatusValidated, client.StatusBooting, client.StatusRendering, client.StatusFinalizing, client.StatusCompleted}
	if !slices.Equal(steps, want) {
		t.Errorf("status changes %v, want %v", steps, want)
	}
	if n := len(rcv.of(client.EventRenderFail)); n != 0 {
		t.Errorf("%d onRenderFail for a job that completed", n)
	}

	log, err := c.WebhookDeliveries(ctx, hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	var completeAttempts []client.WebhookDelivery
	for _, d := range log {
		if d.Event == client.EventRenderComplete {
			completeAttempts = append(completeAttempts, d)
		}
	}
	if len(completeAttempts) != 3 {
		t.Fatalf("deliveries log has %d onRenderComplete attempts, want 3: %+v", len(completeAttempts), log)
	}
	last, first := completeAttempts[0], completeAttempts[2] // newest first
	if first.HTTPStatus == nil || *first.HTTPStatus != 500 || first.NextRetryAt == nil || first.Attempt != 1 {
		t.Errorf("first attempt logged as %+v, want 500 with a next retry time", first)
	}
	if last.HTTPStatus == nil || *last.HTTPStatus != 200 || last.NextRetryAt != nil || last.Attempt != 3 || last.JobID != job.ID {
		t.Errorf("last attempt logged as %+v, want 200 and no retry", last)
	}
}

// TestWebhookFailEventAndIsolation: a job that fails validation sends
// onRenderFail to its workspace's receiver only, and another workspace can
// neither see nor touch the webhook.
func TestWebhookFailEventAndIsolation(t *testing.T) {
	f := startFarm(t, "--webhook-allow-private")
	a, b := f.client("studio-a"), f.client("studio-b")
	ctx := testContext(t)
	rcvA, rcvB := newReceiver(t, nil), newReceiver(t, nil)

	hookA, err := a.CreateWebhook(ctx, rcvA.srv.URL, []string{client.EventRenderFail})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateWebhook(ctx, rcvB.srv.URL, []string{client.EventRenderFail, client.EventStatusChange}); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"get":        func() error { _, err := b.GetWebhook(ctx, hookA.ID); return err },
		"delete":     func() error { return b.DeleteWebhook(ctx, hookA.ID) },
		"rotate":     func() error { _, err := b.RotateWebhookSecret(ctx, hookA.ID); return err },
		"deliveries": func() error { _, err := b.WebhookDeliveries(ctx, hookA.ID); return err },
	} {
		if err := call(); !client.IsNotFound(err) {
			t.Errorf("%s of another workspace's webhook: %v, want 404", name, err)
		}
	}
	if list, err := b.ListWebhooks(ctx); err != nil || len(list) != 1 {
		t.Errorf("workspace b lists %d webhooks (%v), want its own one", len(list), err)
	}

	bad := filepath.Join(t.TempDir(), "notes.blend")
	writeFile(t, bad, []byte("not a blend file at all"))
	job := validate(ctx, t, a, submit(ctx, t, a, bad).ID)
	if job.Status != client.StatusFailed {
		t.Fatalf("job is %s, want failed", job.Status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(rcvA.of(client.EventRenderFail)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	fails := rcvA.of(client.EventRenderFail)
	if len(fails) != 1 {
		t.Fatalf("onRenderFail arrived %d times, want 1", len(fails))
	}
	ev, err := client.VerifyWebhook(hookA.Secret, fails[0].header, fails[0].body, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != client.StatusFailed || ev.FailedReason == nil || ev.FailedReason.Name != "NOT_A_BLEND_FILE" || ev.FailedAt == nil {
		t.Errorf("onRenderFail = %+v", ev)
	}
	// Every event of the job has been delivered: none went to b.
	f.waitWorkDone("deliver_webhook")
	if n := len(rcvB.of(client.EventRenderFail)) + len(rcvB.of(client.EventStatusChange)); n != 0 {
		t.Errorf("workspace b's receiver got %d events of workspace a's job", n)
	}

	rotated, err := a.RotateWebhookSecret(ctx, hookA.ID)
	if err != nil || rotated.Secret == "" || rotated.Secret == hookA.Secret {
		t.Errorf("rotate: %+v %v", rotated, err)
	}
	if err := a.DeleteWebhook(ctx, hookA.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetWebhook(ctx, hookA.ID); !client.IsNotFound(err) {
		t.Errorf("deleted webhook: %v, want 404", err)
	}
}

// TestWebhookToThisMachineIsRefused: without --webhook-allow-private, a
// receiver on loopback is refused at registration.
func TestWebhookToThisMachineIsRefused(t *testing.T) {
	f := startFarm(t)
	c := f.lenientClient("studio")
	ctx := testContext(t)
	for _, url := range []string{"http://127.0.0.1:9/hook", "http://[::1]:9/", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/"} {
		_, err := c.CreateWebhook(ctx, url, []string{client.EventRenderComplete})
		var apiErr *client.APIError
		if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Field != "url" {
			t.Errorf("register %s: %v, want 400 naming url", url, err)
		}
	}
	if list, err := c.ListWebhooks(ctx); err != nil || len(list) != 0 {
		t.Errorf("%d webhooks after refused registrations (%v)", len(list), err)
	}
}
