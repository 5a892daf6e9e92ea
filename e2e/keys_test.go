package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// The operator's key commands, `renderfarm keys create|list|revoke`, run
// as the real binary against the farm's database, and what API clients see
// of them: a revoked or expired key is refused with a code of its own.

// cli runs `renderfarm args…` to its end and returns what it printed; a
// failure fails the test.
func cli(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("renderfarm %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

// listedKey is one key of `renderfarm keys list --json`.
type listedKey struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	ExpiresAt  *time.Time `json:"expiresAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

// listKeys runs `renderfarm keys list --json` with the backend flags given.
func listKeys(t *testing.T, backend ...string) []listedKey {
	t.Helper()
	out, _ := cli(t, append([]string{"keys", "list", "--json"}, backend...)...)
	var keys []listedKey
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("keys list --json printed no JSON list: %v\n%s", err, out)
	}
	return keys
}

// listedByPrefix finds the key whose prefix starts key.
func listedByPrefix(t *testing.T, keys []listedKey, key string) listedKey {
	t.Helper()
	for _, k := range keys {
		if strings.HasPrefix(key, k.Prefix) {
			return k
		}
	}
	t.Fatalf("no listed key has the prefix of %.9s…: %+v", key, keys)
	return listedKey{}
}

// apiClient is a client of the API at base with key, whose every exchange
// is checked against the OpenAPI document.
func apiClient(t *testing.T, base, key string) *client.Client {
	hc := &http.Client{Transport: apitest.ValidatingTransport(t, http.DefaultTransport), Timeout: time.Minute}
	return client.New(base, key, client.WithHTTPClient(hc))
}

// refusedWith is the code of the 401 that err is, or "" when err is not one.
func refusedWith(err error) string {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
		return apiErr.Code
	}
	return ""
}

var firstKeyInLog = regexp.MustCompile(`apiKey=(RF-[0-9a-f]+)`)

// TestKeyCommandsNameListAndRevokeKeys: a key is created with a name and
// an expiry and printed alone on stdout; `keys list` shows it, the key
// serve made at its first start, and when each was last used, and never a
// key or its hash; `keys revoke` makes the API refuse it with KEY_REVOKED.
func TestKeyCommandsNameListAndRevokeKeys(t *testing.T) {
	f := startFarm(t)
	ctx := testContext(t)
	backend := []string{"--data-dir", f.DataDir}

	m := firstKeyInLog.FindStringSubmatch(f.Log.String())
	if m == nil {
		t.Fatalf("serve logged no first key:\n%s", f.Log.String())
	}
	firstKey := m[1]
	if _, err := apiClient(t, f.URL, firstKey).ListJobs(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("the key serve made at its first start: %v", err)
	}

	out, errOut := cli(t, append([]string{"keys", "create", "--workspace", "studio", "--name", "render pipeline", "--expires", "90d"}, backend...)...)
	key := strings.TrimSpace(out)
	if !regexp.MustCompile(`^RF-[0-9a-f]{48}$`).MatchString(key) || strings.Count(out, "\n") != 1 {
		t.Fatalf("keys create printed %q on stdout, want the key alone on one line", out)
	}
	if !strings.Contains(errOut, `"render pipeline"`) || !strings.Contains(errOut, `workspace "studio"`) || !strings.Contains(errOut, "expires ") {
		t.Errorf("keys create said on stderr %q; want the key's name, workspace and expiry", errOut)
	}
	if _, err := apiClient(t, f.URL, key).ListJobs(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("the new key: %v", err)
	}

	table, _ := cli(t, append([]string{"keys", "list"}, backend...)...)
	keys := listKeys(t, backend...)
	for _, k := range []string{firstKey, key} {
		sum := sha256.Sum256([]byte(k))
		listed := listedByPrefix(t, keys, k)
		secret := k[len(listed.Prefix):]
		for name, output := range map[string]string{"keys list": table, "keys list --json": mustJSON(t, keys)} {
			if strings.Contains(output, secret) {
				t.Errorf("%s shows the secret part of key %s…:\n%s", name, listed.Prefix, output)
			}
			if strings.Contains(output, hex.EncodeToString(sum[:])) {
				t.Errorf("%s shows the hash of key %s…:\n%s", name, listed.Prefix, output)
			}
			if !strings.Contains(output, listed.ID) || !strings.Contains(output, listed.Prefix) {
				t.Errorf("%s does not show key %s's id and prefix:\n%s", name, listed.ID, output)
			}
		}
	}
	first, created := listedByPrefix(t, keys, firstKey), listedByPrefix(t, keys, key)
	if first.Workspace != "default" || first.Name != "" || first.ExpiresAt != nil || first.State != "active" || first.LastUsedAt == nil {
		t.Errorf("the first key is listed as %+v; want workspace default, no name, no expiry, active, used", first)
	}
	wantExpiry := created.CreatedAt.Add(90 * 24 * time.Hour)
	if created.Workspace != "studio" || created.Name != "render pipeline" || created.State != "active" || created.LastUsedAt == nil ||
		created.ExpiresAt == nil || created.ExpiresAt.Sub(wantExpiry).Abs() > time.Minute {
		t.Errorf("the created key is listed as %+v; want workspace studio, its name, active, used, expiring 90 days after its creation", created)
	}
	if !strings.Contains(table, "render pipeline") || !strings.Contains(table, "LAST USED") {
		t.Errorf("keys list shows no name or last use:\n%s", table)
	}
	if only := listKeys(t, append([]string{"--workspace", "studio"}, backend...)...); len(only) != 1 || only[0].ID != created.ID {
		t.Errorf("keys list --workspace studio = %+v, want the created key alone", only)
	}

	out, _ = cli(t, append([]string{"keys", "revoke", created.ID}, backend...)...)
	if !strings.Contains(out, "revoked API key "+created.ID) {
		t.Errorf("keys revoke said %q", out)
	}
	_, err := apiClient(t, f.URL, key).ListJobs(ctx, client.ListOptions{})
	deadline := time.Now().Add(5 * time.Second)
	for refusedWith(err) == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_, err = apiClient(t, f.URL, key).ListJobs(ctx, client.ListOptions{})
	}
	var apiErr *client.APIError
	if refusedWith(err) != "KEY_REVOKED" || !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "was revoked at") {
		t.Fatalf("the revoked key, after 5 s: %v; want 401 KEY_REVOKED saying when", err)
	}
	if _, err := apiClient(t, f.URL, firstKey).ListJobs(ctx, client.ListOptions{}); err != nil {
		t.Errorf("the other key after revoking one: %v", err)
	}
	if k := listedByPrefix(t, listKeys(t, backend...), key); k.State != "revoked" || k.RevokedAt == nil {
		t.Errorf("the revoked key is listed as %+v", k)
	}

	// Revoking again changes nothing and says so; an id that names no
	// key is an error that says where the ids are.
	if out, _ := cli(t, append([]string{"keys", "revoke", created.ID}, backend...)...); !strings.Contains(out, "already revoked") {
		t.Errorf("revoking twice said %q", out)
	}
	cmd := exec.Command(binary(t), append([]string{"keys", "revoke", "no-such-id"}, backend...)...)
	msg, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 || !strings.Contains(string(msg), "keys list") {
		t.Errorf("revoking an unknown id: %v\n%s\nwant exit 1 pointing at keys list", err, msg)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeysCreateRefusesNonsense: a bad --expires or --name is a usage
// error (exit 2) that says what to give, and makes no key.
func TestKeysCreateRefusesNonsense(t *testing.T) {
	dataDir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--expires", "0d"}, "between 1d and 36500d"},
		{[]string{"--expires", "soon"}, "write days as 90d"},
		{[]string{"--expires", "-1h"}, "between 1s and 36500d"},
		{[]string{"--name", strings.Repeat("x", 65)}, "at most 64"},
		{[]string{"--name", "tab\there"}, "control character"},
	} {
		args := append([]string{"keys", "create", "--data-dir", dataDir}, tt.args...)
		out, err := exec.Command(binary(t), args...).CombinedOutput()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(out), tt.want) {
			t.Errorf("keys create %s: %v\n%s\nwant exit 2 saying %q", strings.Join(tt.args, " "), err, out, tt.want)
		}
	}
	if keys := listKeys(t, "--data-dir", dataDir); len(keys) != 0 {
		t.Errorf("refused keys were stored: %+v", keys)
	}
}

// TestAnExpiredKeyIsRefusedWithKeyExpired: a key made with a short
// --expires works until then, and from then on is refused with 401
// KEY_EXPIRED saying when it expired.
func TestAnExpiredKeyIsRefusedWithKeyExpired(t *testing.T) {
	f := startFarm(t)
	ctx := testContext(t)
	out, _ := cli(t, "keys", "create", "--data-dir", f.DataDir, "--workspace", "studio", "--expires", "4s")
	key := strings.TrimSpace(out)
	expires := *listedByPrefix(t, listKeys(t, "--data-dir", f.DataDir), key).ExpiresAt
	c := apiClient(t, f.URL, key)
	if _, err := c.ListJobs(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("the key before its expiry (%s from now): %v", time.Until(expires).Round(time.Millisecond), err)
	}

	// Poll as a client would, from before the expiry until the refusal.
	var err error
	deadline := expires.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = c.ListJobs(ctx, client.ListOptions{}); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	refused := time.Now()
	var apiErr *client.APIError
	if refusedWith(err) != "KEY_EXPIRED" || !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "expired at "+expires.UTC().Format(time.RFC3339)) {
		t.Fatalf("the key after its expiry: %v; want 401 KEY_EXPIRED saying when it expired, %s", err, expires.UTC().Format(time.RFC3339))
	}
	if refused.Before(expires) {
		t.Errorf("the key was refused %v before its expiry", expires.Sub(refused))
	}
	t.Logf("refused %v after its expiry", refused.Sub(expires).Round(time.Millisecond))
	if k := listedByPrefix(t, listKeys(t, "--data-dir", f.DataDir), key); k.State != "expired" {
		t.Errorf("keys list shows the expired key as %q", k.State)
	}
}

// TestARevokedKeyIsRefusedByEveryReplicaWithinFiveSeconds runs two API
// replicas on one PostgreSQL database. A key is used on both, so that both
// have it in their key cache, then revoked with `renderfarm keys revoke`;
// both answer 401 KEY_REVOKED within 5 s of the command's start.
func TestARevokedKeyIsRefusedByEveryReplicaWithinFiveSeconds(t *testing.T) {
	d := newDistributed(t)
	replicas := map[string]*farm{}
	for _, name := range []string{"replica A", "replica B"} {
		replicas[name] = d.api(t, "--workers", "0")
	}
	out, _ := cli(t, "keys", "create", "--database", d.database, "--workspace", "studio", "--name", "leaked")
	key := strings.TrimSpace(out)
	id := listedByPrefix(t, listKeys(t, "--database", d.database), key).ID
	ctx := testContext(t)
	clients := map[string]*client.Client{}
	for name, p := range replicas {
		clients[name] = apiClient(t, p.URL, key)
		if _, err := clients[name].ListJobs(ctx, client.ListOptions{}); err != nil {
			t.Fatalf("%s before the revocation: %v", name, err)
		}
	}

	revoking := time.Now()
	cli(t, "keys", "revoke", id, "--database", d.database)
	revoked := time.Now()

	var wg sync.WaitGroup
	var mu sync.Mutex
	delays := map[string]time.Duration{}
	for name, c := range clients {
		wg.Go(func() {
			deadline := revoking.Add(5 * time.Second)
			for {
				_, err := c.ListJobs(ctx, client.ListOptions{})
				code := refusedWith(err)
				if code == "KEY_REVOKED" {
					mu.Lock()
					delays[name] = time.Since(revoking)
					mu.Unlock()
					return
				}
				if err != nil && code == "" {
					t.Errorf("%s: %v", name, err)
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("%s still answers the revoked key 5 s after `keys revoke` started (last answer: %v)", name, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	t.Logf("keys revoke took %v; refused from its start after: %v", revoked.Sub(revoking).Round(time.Millisecond), delays)

	// An unknown key is still refused as before, on both.
	for name, p := range replicas {
		_, err := apiClient(t, p.URL, "RF-"+strings.Repeat("0", 48)).ListJobs(context.Background(), client.ListOptions{})
		if code := refusedWith(err); code != client.CodeUnauthorized {
			t.Errorf("%s, an unknown key: %v; want 401 UNAUTHORIZED", name, err)
		}
	}
}
