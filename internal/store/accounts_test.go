package store_test

import (
	"errors"
	"slices"
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

// insertKey stores a key of workspace ws, named after its id.
func insertKey(t *testing.T, s *store.Store, ws store.Workspace, id string, created time.Time, expires *time.Time) store.APIKey {
	t.Helper()
	k := store.APIKey{ID: id, WorkspaceID: ws.ID, Hash: "hash-of-" + id, Prefix: "RF-" + id[:3], Name: "name of " + id, CreatedAt: created, ExpiresAt: expires}
	if err := s.InsertAPIKey(t.Context(), k); err != nil {
		t.Fatalf("InsertAPIKey(%s): %v", id, err)
	}
	return k
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func TestAPIKeysKeepTheirNameAndExpiry(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		expires := at(30)
		insertKey(t, s, ws, "key-expiring", at(0), &expires)
		insertKey(t, s, ws, "key-forever", at(1), nil)

		got, err := s.APIKeyByHash(t.Context(), "hash-of-key-expiring")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "name of key-expiring" || !sameTime(got.ExpiresAt, &expires) || got.RevokedAt != nil || got.LastUsedAt != nil {
			t.Errorf("APIKeyByHash = %+v, want its name, expiry %v, never revoked nor used", got, expires)
		}
		if got.ExpiresAt.Location() != time.UTC {
			t.Errorf("expiry read back in %v, want UTC", got.ExpiresAt.Location())
		}
		forever, err := s.APIKeyByHash(t.Context(), "hash-of-key-forever")
		if err != nil {
			t.Fatal(err)
		}
		if forever.ExpiresAt != nil {
			t.Errorf("a key made without an expiry expires at %v", forever.ExpiresAt)
		}
	})
}

func TestListAPIKeysByWorkspaceOldestFirst(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		studio, other := ensureWorkspace(t, s, "studio"), ensureWorkspace(t, s, "another studio")
		expires := at(50)
		insertKey(t, s, studio, "key-s2", at(2), nil)
		insertKey(t, s, studio, "key-s1", at(1), &expires)
		insertKey(t, s, other, "key-o1", at(3), nil)
		if _, _, err := s.RevokeAPIKey(t.Context(), "key-s2", at(10)); err != nil {
			t.Fatal(err)
		}

		all, err := s.ListAPIKeys(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range all {
			ids = append(ids, k.ID)
		}
		// By workspace name, then oldest first; revoked keys are listed.
		if want := []string{"key-o1", "key-s1", "key-s2"}; !slices.Equal(ids, want) {
			t.Fatalf("ListAPIKeys(all) = %v, want %v", ids, want)
		}
		s1 := all[1]
		if s1.Workspace != "studio" || s1.WorkspaceID != studio.ID || s1.Name != "name of key-s1" || s1.Prefix != "RF-key" ||
			!s1.CreatedAt.Equal(at(1)) || !sameTime(s1.ExpiresAt, &expires) || s1.RevokedAt != nil || s1.LastUsedAt != nil {
			t.Errorf("key-s1 listed as %+v", s1)
		}
		if revoked := at(10); !sameTime(all[2].RevokedAt, &revoked) {
			t.Errorf("key-s2 revoked at %v, want %v", all[2].RevokedAt, revoked)
		}

		only, err := s.ListAPIKeys(t.Context(), "another studio")
		if err != nil || len(only) != 1 || only[0].ID != "key-o1" {
			t.Errorf("ListAPIKeys(another studio) = %+v, %v; want key-o1 alone", only, err)
		}
		none, err := s.ListAPIKeys(t.Context(), "nobody")
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("ListAPIKeys(nobody) = %#v, %v; want an empty list", none, err)
		}
	})
}

func TestRevokeAPIKeyOnceKeepsTheFirstTime(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		insertKey(t, s, ws, "key-1", at(0), nil)
		insertKey(t, s, ws, "key-2", at(0), nil)

		k, revoked, err := s.RevokeAPIKey(t.Context(), "key-1", at(5))
		if err != nil || !revoked || k.ID != "key-1" || k.Workspace != "studio" || !sameTime(k.RevokedAt, ptr(at(5))) {
			t.Fatalf("RevokeAPIKey = %+v, %v, %v; want key-1 revoked at %v", k, revoked, err, at(5))
		}
		again, revoked, err := s.RevokeAPIKey(t.Context(), "key-1", at(9))
		if err != nil || revoked || !sameTime(again.RevokedAt, ptr(at(5))) {
			t.Errorf("revoking again = %+v, %v, %v; want no change, still revoked at %v", again, revoked, err, at(5))
		}
		byHash, err := s.APIKeyByHash(t.Context(), "hash-of-key-1")
		if err != nil || !sameTime(byHash.RevokedAt, ptr(at(5))) {
			t.Errorf("APIKeyByHash after revoking = %+v, %v; want revoked at %v", byHash, err, at(5))
		}
		// The other key of the workspace is untouched.
		other, err := s.APIKeyByHash(t.Context(), "hash-of-key-2")
		if err != nil || other.RevokedAt != nil {
			t.Errorf("key-2 after revoking key-1: %+v, %v; want it in force", other, err)
		}
		if _, _, err := s.RevokeAPIKey(t.Context(), "no-such-key", at(5)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeAPIKey(no-such-key) error = %v, want ErrNotFound", err)
		}
	})
}

func TestRecordAPIKeyUseWritesOnlyAnOlderTime(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		insertKey(t, s, ws, "key-1", at(0), nil)
		lastUsed := func() *time.Time {
			t.Helper()
			k, err := s.APIKeyByHash(t.Context(), "hash-of-key-1")
			if err != nil {
				t.Fatal(err)
			}
			return k.LastUsedAt
		}
		record := func(when time.Time) {
			t.Helper()
			if err := s.RecordAPIKeyUse(t.Context(), "key-1", when, when.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}

		record(at(10))
		if got := lastUsed(); !sameTime(got, ptr(at(10))) {
			t.Fatalf("first use: last used %v, want %v", got, at(10))
		}
		// Within the minute: nothing is written.
		record(at(10).Add(59 * time.Second))
		if got := lastUsed(); !sameTime(got, ptr(at(10))) {
			t.Errorf("59 s later: last used %v, want still %v", got, at(10))
		}
		// A minute on, it moves.
		record(at(11))
		if got := lastUsed(); !sameTime(got, ptr(at(11))) {
			t.Errorf("a minute later: last used %v, want %v", got, at(11))
		}
	})
}
