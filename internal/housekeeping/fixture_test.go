package housekeeping

import (
	"os"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/service"
)

// The tests of this package run the housekeeping's work by hand on a farm
// of enginetest's whose engine is never started, with jobs made through
// the API's service; webhook_farm_test.go's farm runs River for real.

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// fixture is a farm with the service and the housekeeping on it.
type fixture struct {
	*enginetest.Farm
	api *service.Service
	hk  *Housekeeping
}

func newFixture(t *testing.T, db enginetest.Database) *fixture {
	t.Helper()
	f := &fixture{Farm: enginetest.New(t, db)}
	svc := service.DefaultConfig()
	svc.WorkerTimeout, svc.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	svc.LocalRenderSlots = 0
	f.api = service.New(f.Engine, svc)
	cfg := DefaultConfig()
	cfg.WorkerTimeout, cfg.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	f.hk = New(f.Engine, cfg)
	return f
}

// eachFixture runs test on a fresh fixture of each database the farm runs
// on (see enginetest.EachDatabase).
func eachFixture(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Helper()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) { test(t, newFixture(t, db)) })
}
