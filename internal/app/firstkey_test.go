package app

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// Replicas of serve that start at the same moment on a farm without a key
// (a Helm release with serve.replicas above 1) make one first key between
// them, shown by the one that made it alone; the others say the farm has
// a key. Each replica here has a database handle of its own, as separate
// processes do.
func TestServeReplicasStartingTogetherMakeOneFirstKey(t *testing.T) {
	const replicas = 8
	for _, db := range []struct {
		dialect string
		open    func(t *testing.T) func(ctx context.Context) (*store.Store, error)
	}{
		{"sqlite", func(t *testing.T) func(ctx context.Context) (*store.Store, error) {
			path := filepath.Join(t.TempDir(), "renderfarm.db")
			return func(ctx context.Context) (*store.Store, error) { return store.OpenSQLite(ctx, path) }
		}},
		{"postgres", func(t *testing.T) func(ctx context.Context) (*store.Store, error) {
			dsn := testbackends.PostgresDatabase(t, "")
			return func(ctx context.Context) (*store.Store, error) { return store.OpenPostgres(ctx, dsn) }
		}},
	} {
		t.Run(db.dialect, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			open := db.open(t)
			mains := make([]*Main, replicas)
			logs := make([]*bytes.Buffer, replicas)
			for i := range mains {
				st, err := open(ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				logs[i] = new(bytes.Buffer)
				mains[i] = &Main{store: st, log: slog.New(slog.NewTextHandler(logs[i], nil))}
			}

			start := make(chan struct{})
			errs := make([]error, replicas)
			var wg sync.WaitGroup
			for i, m := range mains {
				wg.Go(func() {
					<-start
					errs[i] = m.firstKey(ctx)
				})
			}
			close(start)
			wg.Wait()

			shown := 0
			for i, err := range errs {
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
				}
				switch log := logs[i].String(); {
				case strings.Contains(log, "apiKey=RF-"):
					shown++
				case !strings.Contains(log, "has an API key already"):
					t.Errorf("replica %d showed no key and did not say the farm has one:\n%s", i, log)
				}
			}
			n, err := mains[0].store.CountAPIKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 || shown != 1 {
				t.Errorf("%d replicas starting together made %d keys and %d of them showed one; want 1 and 1", replicas, n, shown)
			}
		})
	}
}
