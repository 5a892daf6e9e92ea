package service

import (
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// TestConcurrentWebhooksStopAtTheWorkspacesLimit: a workspace with 15
// webhooks is sent 20 more at the same moment. Five are registered, which
// makes the most it may have; the others are refused with
// INVALID_REQUEST, saying so.
func TestConcurrentWebhooksStopAtTheWorkspacesLimit(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		const before, sent = farm.MaxWebhooksPerWorkspace - 5, 20
		for range before {
			f.CreateWebhook(f.api, webhook.EventRenderComplete)
		}
		errs := make([]error, sent)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				<-start
				_, errs[i] = f.api.CreateWebhook(f.Ctx, f.P, enginetest.HookURL, []string{webhook.EventRenderComplete})
			})
		}
		close(start)
		wg.Wait()

		made := 0
		for i, err := range errs {
			switch {
			case err == nil:
				made++
			case enginetest.ErrorCode(err) != farm.CodeInvalidRequest:
				t.Errorf("webhook %d: %v, want %s", i, err, farm.CodeInvalidRequest)
			}
		}
		if made != farm.MaxWebhooksPerWorkspace-before {
			t.Errorf("%d of the %d webhooks sent together were registered, want %d", made, sent, farm.MaxWebhooksPerWorkspace-before)
		}
		if n := f.Count("webhooks", "workspace_id = ?", f.P.WorkspaceID); n != farm.MaxWebhooksPerWorkspace {
			t.Errorf("the workspace has %d webhooks, want %d, the most it may have", n, farm.MaxWebhooksPerWorkspace)
		}
	})
}
