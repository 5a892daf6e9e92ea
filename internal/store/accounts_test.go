package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/store"
)

func TestEnsureWorkspaceTwiceReturnsTheSameWorkspace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		first := ensureWorkspace(t, s, "studio")
		second := ensureWorkspace(t, s, "studio")
		if first.ID == "" || first.Name != "studio" {
			t.Fatalf("EnsureWorkspace = %+v, want an id and the name", first)
		}
		if second.ID != first.ID || !second.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("second EnsureWorkspace = %+v, want the first one, %+v", second, first)
		}
		other := ensureWorkspace(t, s, "other studio")
		if other.ID == first.ID {
			t.Error("two names share one workspace")
		}
		if got := countRows(t, s, "workspaces"); got != 2 {
			t.Errorf("%d workspaces, want 2", got)
		}
	})
}

func TestEnsureWorkspaceAtTheSameTimeMakesOneWorkspace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		const callers = 16
		ids := make([]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				ws, err := s.EnsureWorkspace(t.Context(), "studio")
				ids[i], errs[i] = ws.ID, err
			})
		}
		wg.Wait()
		for i := range callers {
			if errs[i] != nil {
				t.Errorf("caller %d: %v", i, errs[i])
			} else if ids[i] != ids[0] {
				t.Errorf("caller %d got workspace %s, caller 0 got %s", i, ids[i], ids[0])
			}
		}
		if got := countRows(t, s, "workspaces"); got != 1 {
			t.Errorf("%d workspaces, want 1", got)
		}
	})
}

func TestAPIKeysAreFoundByTheirHash(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		if n, err := s.CountAPIKeys(t.Context()); err != nil || n != 0 {
			t.Fatalf("CountAPIKeys on a new database = %d, %v; want 0", n, err)
		}
		key := store.APIKey{ID: "key-1", WorkspaceID: ws.ID, Hash: "9f86d081884c7d65", Prefix: "RJ-abcd", CreatedAt: at(0)}
		if err := s.InsertAPIKey(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		got, err := s.APIKeyByHash(t.Context(), key.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != key.ID || got.WorkspaceID != key.WorkspaceID || got.Hash != key.Hash || got.Prefix != key.Prefix || !got.CreatedAt.Equal(key.CreatedAt) {
			t.Errorf("APIKeyByHash = %+v, want %+v", got, key)
		}
		if n, err := s.CountAPIKeys(t.Context()); err != nil || n != 1 {
			t.Errorf("CountAPIKeys = %d, %v; want 1", n, err)
		}
	})
}

func TestAPIKeyByHashOfAnUnknownKeyIsNotFound(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		if _, err := s.APIKeyByHash(t.Context(), "unknown"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("APIKeyByHash(unknown) error = %v, want ErrNotFound", err)
		}
	})
}

func TestAPIKeyHashesAreUnique(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		now := time.Now()
		if err := s.InsertAPIKey(t.Context(), store.APIKey{ID: "key-1", WorkspaceID: ws.ID, Hash: "same", Prefix: "RJ-a", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertAPIKey(t.Context(), store.APIKey{ID: "key-2", WorkspaceID: ws.ID, Hash: "same", Prefix: "RJ-b", CreatedAt: now}); err == nil {
			t.Error("a second key with the same hash was stored")
		}
	})
}

func TestAPIKeysBelongToAWorkspaceThatExists(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		err := s.InsertAPIKey(t.Context(), store.APIKey{ID: "key-1", WorkspaceID: "nobody", Hash: "h", Prefix: "RJ-a", CreatedAt: time.Now()})
		if err == nil {
			t.Error("a key of a workspace that does not exist was stored")
		}
	})
}
