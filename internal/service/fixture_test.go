package service

import (
	"os"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
)

// The tests of this package call the service as the HTTP API does, on a
// farm of enginetest's whose engine is never started: what a request
// queued is read from River's table.

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// fixture is a farm with the service on it.
type fixture struct {
	*enginetest.Farm
	api *Service
}

func newFixture(t testing.TB, db enginetest.Database) *fixture {
	t.Helper()
	f := &fixture{Farm: enginetest.New(t, db)}
	cfg := DefaultConfig()
	cfg.WorkerTimeout, cfg.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	// Renders are spread over the farm's live workers, as on an API server.
	cfg.LocalRenderSlots = 0
	f.api = New(f.Engine, cfg)
	return f
}

// eachFixture runs test on a fresh fixture of each database the farm runs
// on (see enginetest.EachDatabase).
func eachFixture(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Helper()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) { test(t, newFixture(t, db)) })
}
