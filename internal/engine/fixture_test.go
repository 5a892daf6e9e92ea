package engine_test

import (
	"os"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/service"
)

// The tests of this package call the engine's operations on a farm of
// enginetest's whose engine is never started, with jobs and webhooks made
// through the API's service.

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// fixture is a farm with the service on it.
type fixture struct {
	*enginetest.Farm
	api *service.Service
}

func newFixture(t *testing.T, db enginetest.Database) *fixture {
	t.Helper()
	f := &fixture{Farm: enginetest.New(t, db)}
	cfg := service.DefaultConfig()
	cfg.WorkerTimeout, cfg.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	cfg.LocalRenderSlots = 0
	f.api = service.New(f.Engine, cfg)
	return f
}

// eachFixture runs test on a fresh fixture of each database the farm runs
// on (see enginetest.EachDatabase).
func eachFixture(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Helper()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) { test(t, newFixture(t, db)) })
}
