package service

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// refusal is the code and message of a 401, or fails the test.
func refusal(t *testing.T, err error) (code, message string) {
	t.Helper()
	var fe *farm.Error
	if !errors.As(err, &fe) || fe.Kind != farm.KindUnauthorized {
		t.Fatalf("Authenticate error = %v, want a 401", err)
	}
	return fe.Code, fe.Message
}

func TestAKeyWorksUntilItIsRevoked(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		created, err := IssueAPIKey(f.Ctx, f.Store, NewAPIKey{Workspace: "studio", Name: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		if created.Info.Name != "ci" || created.Info.Workspace != "studio" || created.Info.ExpiresAt != nil || !strings.HasPrefix(created.Key, created.Info.Prefix) {
			t.Fatalf("IssueAPIKey = %+v", created.Info)
		}
		p, err := f.api.Authenticate(f.Ctx, created.Key)
		if err != nil || p.WorkspaceID != created.Info.WorkspaceID || p.KeyID != created.Info.ID || !p.KeyExpiresAt.IsZero() {
			t.Fatalf("Authenticate = %+v, %v; want key %s of its workspace, without an expiry", p, err, created.Info.ID)
		}

		revokedKey, revoked, err := RevokeAPIKey(f.Ctx, f.Store, created.Info.ID)
		if err != nil || !revoked || revokedKey.RevokedAt == nil {
			t.Fatalf("RevokeAPIKey = %+v, %v, %v", revokedKey, revoked, err)
		}

		_, err = f.api.Authenticate(f.Ctx, created.Key)
		code, msg := refusal(t, err)
		if code != farm.CodeKeyRevoked || !strings.Contains(msg, "revoked at "+revokedKey.RevokedAt.Format(time.RFC3339)) || !strings.Contains(msg, created.Info.Prefix) {
			t.Errorf("a revoked key: %s %q; want KEY_REVOKED naming the key's prefix and when it was revoked", code, msg)
		}
		if strings.Contains(msg, created.Key[len(created.Info.Prefix):]) {
			t.Errorf("the refusal repeats the key's secret part: %q", msg)
		}
	})
}

func TestAnExpiredKeyIsRefusedSayingWhen(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		created, err := IssueAPIKey(f.Ctx, f.Store, NewAPIKey{Workspace: "studio", ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		p, err := f.api.Authenticate(f.Ctx, created.Key)
		if err != nil || !p.KeyExpiresAt.Equal(expires) {
			t.Fatalf("before its expiry: %+v, %v; want it accepted, with its expiry %v", p, err, expires)
		}

		// An hour later, as the database sees it: the expiry moved into the past.
		past := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		f.Exec(`UPDATE api_keys SET expires_at = ? WHERE id = ?`, past, created.Info.ID)
		_, err = f.api.Authenticate(f.Ctx, created.Key)
		code, msg := refusal(t, err)
		if code != farm.CodeKeyExpired || !strings.Contains(msg, "expired at "+past.Format(time.RFC3339)) {
			t.Errorf("an expired key: %s %q; want KEY_EXPIRED saying when", code, msg)
		}
	})
}

func TestAnUnknownKeyIsRefusedAsBefore(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		if _, err := IssueAPIKey(f.Ctx, f.Store, NewAPIKey{Workspace: "studio"}); err != nil {
			t.Fatal(err)
		}
		_, err := f.api.Authenticate(f.Ctx, "RF-000000000000000000000000000000000000000000000000")
		code, msg := refusal(t, err)
		if code != farm.CodeUnauthorized || msg != "the API key is not valid; create one with `renderfarm keys create --workspace NAME`" {
			t.Errorf("an unknown key: %s %q", code, msg)
		}
	})
}

func TestALastUseIsWrittenAtMostOnceAMinute(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		created, err := IssueAPIKey(f.Ctx, f.Store, NewAPIKey{Workspace: "studio"})
		if err != nil {
			t.Fatal(err)
		}
		lastUsed := func() *time.Time {
			t.Helper()
			keys, err := ListAPIKeys(f.Ctx, f.Store, "studio")
			if err != nil || len(keys) != 1 {
				t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
			}
			return keys[0].LastUsedAt
		}
		setLastUsed := func(when time.Time) {
			t.Helper()
			f.Exec(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`, when.UTC(), created.Info.ID)
		}
		if got := lastUsed(); got != nil {
			t.Fatalf("a new key was last used at %v", got)
		}

		before := time.Now().Add(-time.Millisecond)
		if _, err := f.api.Authenticate(f.Ctx, created.Key); err != nil {
			t.Fatal(err)
		}
		first := lastUsed()
		if first == nil || first.Before(before) || first.After(time.Now()) {
			t.Fatalf("after its first use, last used %v; want the time of the request", first)
		}

		// Used again within the minute: nothing is written.
		recent := time.Now().Add(-30 * time.Second).Truncate(time.Microsecond)
		setLastUsed(recent)
		if _, err := f.api.Authenticate(f.Ctx, created.Key); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); got == nil || !got.Equal(recent) {
			t.Errorf("used 30 s after the last recorded use: last used %v, want it left at %v", got, recent)
		}

		// Used a minute or more after: it moves.
		setLastUsed(time.Now().Add(-2 * time.Minute))
		before = time.Now().Add(-time.Millisecond)
		if _, err := f.api.Authenticate(f.Ctx, created.Key); err != nil {
			t.Fatal(err)
		}
		if got := lastUsed(); got == nil || got.Before(before) {
			t.Errorf("used 2 minutes after the last recorded use: last used %v, want now", got)
		}
	})
}

func TestIssueAPIKeyRefusesNonsense(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		tests := []struct {
			name string
			req  NewAPIKey
			want string
		}{
			{"no workspace", NewAPIKey{Workspace: "  "}, "workspace name is required"},
			{"a name over the limit", NewAPIKey{Workspace: "studio", Name: strings.Repeat("n", MaxKeyNameLength+1)}, "give at most 64"},
			{"a control character in the name", NewAPIKey{Workspace: "studio", Name: "ci\x1b[31m"}, "control character"},
			{"an expiry in the past", NewAPIKey{Workspace: "studio", ExpiresAt: time.Now().Add(-time.Second)}, "not in the future"},
		}
		for _, tt := range tests {
			if _, err := IssueAPIKey(f.Ctx, f.Store, tt.req); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
			}
		}
		if keys, err := ListAPIKeys(f.Ctx, f.Store, ""); err != nil || len(keys) != 0 {
			t.Errorf("refused keys were stored: %+v, %v", keys, err)
		}
		// At the limit, the name is taken as it is, trimmed.
		name := strings.Repeat("n", MaxKeyNameLength)
		if created, err := IssueAPIKey(f.Ctx, f.Store, NewAPIKey{Workspace: "studio", Name: " " + name + " "}); err != nil || created.Info.Name != name {
			t.Errorf("a name of %d characters: %+v, %v", MaxKeyNameLength, created.Info, err)
		}
	})
}

func TestRevokeAPIKeySaysWhatToGive(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		created, err := IssueAPIKey(f.Ctx, f.Store, NewAPIKey{Workspace: "studio"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := RevokeAPIKey(f.Ctx, f.Store, "no-such-id"); err == nil || !strings.Contains(err.Error(), "renderfarm keys list") {
			t.Errorf("an unknown id: %v, want an error pointing at keys list", err)
		}
		_, _, err = RevokeAPIKey(f.Ctx, f.Store, created.Key)
		if err == nil || !strings.Contains(err.Error(), "not a key's id") || strings.Contains(err.Error(), created.Key) {
			t.Errorf("the key instead of its id: %v, want an error that asks for the id without repeating the key", err)
		}
		if _, err := f.api.Authenticate(f.Ctx, created.Key); err != nil {
			t.Errorf("after two refused revocations the key is refused: %v", err)
		}
		_, revoked, err := RevokeAPIKey(f.Ctx, f.Store, created.Info.ID)
		if err != nil || !revoked {
			t.Fatalf("RevokeAPIKey = %v, %v", revoked, err)
		}
		if _, revoked, err := RevokeAPIKey(f.Ctx, f.Store, created.Info.ID); err != nil || revoked {
			t.Errorf("revoking twice: revoked %v, %v; want no error, and told it was revoked before", revoked, err)
		}
	})
}
