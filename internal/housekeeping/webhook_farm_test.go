package housekeeping

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/service"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// webhookFarm is a farm whose engine runs River, delivering webhooks to
// real HTTP receivers on loopback; it renders nothing.
type webhookFarm struct {
	tb      testing.TB
	store   *store.Store
	objects *objstore.Local
	api     *service.Service
}

func newWebhookFarm(tb testing.TB) *webhookFarm {
	tb.Helper()
	farm := enginetest.New(tb, enginetest.SQLite)
	// The receivers are on loopback.
	svc := service.DefaultConfig()
	svc.WorkerTimeout, svc.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	api := service.New(farm.Engine, svc)
	cfg := DefaultConfig()
	cfg.WorkerTimeout, cfg.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	New(farm.Engine, cfg)
	if err := farm.Engine.Start(farm.Ctx); err != nil {
		tb.Fatalf("engine.Start: %v", err)
	}
	// Cleanups run last first: the engine stops, cancelling deliveries
	// still running, before receivers made earlier close.
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = farm.Engine.Stop(ctx)
	})
	return &webhookFarm{tb: tb, store: farm.Store, objects: farm.Objects, api: api}
}

// workspace makes a workspace and answers its principal.
func (f *webhookFarm) workspace(name string) farm.Principal {
	f.tb.Helper()
	ws, err := f.store.EnsureWorkspace(f.tb.Context(), name)
	if err != nil {
		f.tb.Fatalf("EnsureWorkspace: %v", err)
	}
	return farm.Principal{WorkspaceID: ws.ID, KeyID: "key-" + name}
}

// hooks registers n webhooks of p's workspace for every change of status,
// each at its own path of the receiver.
func (f *webhookFarm) hooks(p farm.Principal, r *receiver, n int) {
	f.tb.Helper()
	for i := range n {
		if _, err := f.api.CreateWebhook(f.tb.Context(), p, r.srv.URL+"/hook/"+string(rune('a'+i)), []string{webhook.EventStatusChange}); err != nil {
			f.tb.Fatalf("CreateWebhook: %v", err)
		}
	}
}

// job makes a job in p's workspace, through the API.
func (f *webhookFarm) job(p farm.Principal) *farm.Job {
	f.tb.Helper()
	ctx := f.tb.Context()
	ticket, err := f.api.CreateUpload(ctx, p, "scene.blend", farm.FileTypeBlend)
	if err != nil {
		f.tb.Fatalf("CreateUpload: %v", err)
	}
	if _, err := f.objects.Put(ctx, "uploads/"+ticket.Slug+"/scene.blend", strings.NewReader("BLENDER-v402 not really a scene"), 1<<20); err != nil {
		f.tb.Fatal(err)
	}
	job, err := f.api.CreateJob(ctx, p, ticket.Slug)
	if err != nil {
		f.tb.Fatalf("CreateJob: %v", err)
	}
	return job
}

// cancel cancels a job: one onStatusChange event for each webhook of its
// workspace.
func (f *webhookFarm) cancel(p farm.Principal, job *farm.Job) {
	f.tb.Helper()
	if _, err := f.api.Cancel(f.tb.Context(), p, job.ID); err != nil {
		f.tb.Fatalf("Cancel: %v", err)
	}
}

// arrival is one request a receiver got.
type arrival struct {
	deliveryID string
	path       string
	body       string
	at         time.Time
}

// receiver is a webhook receiver on loopback that records every request
// and answers 200 once answer returns.
type receiver struct {
	srv      *httptest.Server
	answer   func(*http.Request)
	arrivals chan arrival // every request, as it arrives

	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	ended       atomic.Int32 // requests answered or given up by the sender
}

func newReceiver(tb testing.TB, answer func(*http.Request)) *receiver {
	r := &receiver{answer: answer, arrivals: make(chan arrival, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.inFlight++
		r.maxInFlight = max(r.maxInFlight, r.inFlight)
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.inFlight--
			r.mu.Unlock()
			r.ended.Add(1)
		}()
		r.arrivals <- arrival{deliveryID: req.Header.Get(webhook.HeaderDeliveryID), path: req.URL.Path, body: string(body), at: time.Now()}
		if r.answer != nil {
			r.answer(req)
		}
	}))
	tb.Cleanup(r.srv.Close)
	return r
}

// most is the largest number of requests the receiver held at once.
func (r *receiver) most() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInFlight
}

// next waits for the receiver's next request, for up to wait.
func (r *receiver) next(tb testing.TB, wait time.Duration, what string) arrival {
	tb.Helper()
	select {
	case a := <-r.arrivals:
		return a
	case <-time.After(wait):
		tb.Fatalf("no %s within %s", what, wait)
	}
	return arrival{}
}
