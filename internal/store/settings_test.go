package store_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/store"
)

// TestEveryProcessSignsDownloadsWithTheSameSecret: processes that ask for
// the download URL secret at once, and one that asks later, all get the
// same one, made once.
func TestEveryProcessSignsDownloadsWithTheSameSecret(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db testDatabase) {
		stores := []*store.Store{openStore(t, db), openStore(t, db), openStore(t, db)}
		secrets := make([][]byte, len(stores))
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() { secrets[i], errs[i] = s.DownloadURLSecret(t.Context()) })
		}
		wg.Wait()
		for i := range stores {
			if errs[i] != nil {
				t.Fatalf("process %d: %v", i, errs[i])
			}
			if len(secrets[i]) != 32 || !bytes.Equal(secrets[i], secrets[0]) {
				t.Errorf("process %d has the secret %x, process 0 %x: want the same 32 bytes", i, secrets[i], secrets[0])
			}
		}
		later, err := openStore(t, db).DownloadURLSecret(t.Context())
		if err != nil || !bytes.Equal(later, secrets[0]) {
			t.Errorf("a process started later has %x, %v; want the first secret", later, err)
		}
	})
}

// TestServeRecordsWhereDownloadsAreServed: render nodes read where serve
// said the bucket's downloads go; nothing said means the bucket's own.
func TestServeRecordsWhereDownloadsAreServed(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		if url, err := s.FarmDownloadsURL(t.Context()); err != nil || url != "" {
			t.Fatalf("before any serve: %q, %v; want the bucket's own (\"\")", url, err)
		}
		for _, want := range []string{"https://farm.studio.lan", ""} {
			if err := s.SetFarmDownloadsURL(t.Context(), want); err != nil {
				t.Fatal(err)
			}
			if got, err := s.FarmDownloadsURL(t.Context()); err != nil || got != want {
				t.Errorf("after serve recorded %q: %q, %v", want, got, err)
			}
		}
	})
}
