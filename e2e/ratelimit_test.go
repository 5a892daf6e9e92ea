package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// TestRateLimitRefusesABurstingKey runs serve with --rate-limit: a key
// that sends more changes than its burst is refused with 429 and a
// Retry-After, while its reads and other keys go on; the Go client waits
// out the Retry-After by itself.
func TestRateLimitRefusesABurstingKey(t *testing.T) {
	f := startFarm(t, "--rate-limit", "0.2", "--rate-limit-burst", "2")
	ctx := testContext(t)
	key := f.Key("studio")
	hc := &http.Client{Transport: apitest.ValidatingTransport(t, nil)}
	send := func(method, path, body, key string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, f.URL+"/api/external/v1"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	upload := `{"fileName": "scene.blend", "fileType": "blend"}`

	for i := range 2 {
		if resp := send("POST", "/uploads", upload, key); resp.StatusCode != http.StatusOK {
			t.Fatalf("upload %d of the burst: %d", i+1, resp.StatusCode)
		}
	}
	resp := send("POST", "/uploads", upload, key)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("upload after the burst: %d with Retry-After %q, want 429 with 5 (one every 5 s)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for range 10 {
		if resp := send("GET", "/jobs", "", key); resp.StatusCode != http.StatusOK {
			t.Fatalf("a read of the limited key: %d, want 200", resp.StatusCode)
		}
	}
	if resp := send("POST", "/uploads", upload, f.Key("studio")); resp.StatusCode != http.StatusOK {
		t.Errorf("another key's upload: %d, want 200", resp.StatusCode)
	}

	// The client sends a refused request again after Retry-After, so a
	// pipeline slows down instead of failing.
	c := f.client("studio")
	start := time.Now()
	for i := range 3 {
		callCtx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := c.CreateUpload(callCtx, "scene.blend", "blend")
		cancel()
		if err != nil {
			t.Fatalf("client upload %d: %v", i+1, err)
		}
	}
	if waited := time.Since(start); waited < 4*time.Second {
		t.Errorf("three uploads over a burst of two took %v; the third should have waited about 5 s", waited)
	}
}
