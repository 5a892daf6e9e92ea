package httpapi_test

import (
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
)

// slowLimit lets a key send three changes at once and then one every ten
// seconds, so a test's requests all fall within one refill.
var slowLimit = httpapi.RateLimit{PerSecond: 0.1, Burst: 3}

func TestRateLimitAllowsABurstThenRefusesWithRetryAfter(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{RateLimit: slowLimit})
	cancel := apiPrefix + "/jobs/" + jobID + "/cancel"

	for i := range slowLimit.Burst {
		if r := e.do(e.strict, "POST", cancel, ""); r.StatusCode != 200 {
			t.Fatalf("request %d of the burst: %d %s", i+1, r.StatusCode, r.body)
		}
	}
	r := e.do(e.strict, "POST", cancel, "")
	code, msg, _ := r.apiError(t)
	if r.StatusCode != 429 || code != farm.CodeRateLimited {
		t.Fatalf("request after the burst: %d %s, want 429 RATE_LIMITED", r.StatusCode, r.body)
	}
	if got := r.Header.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After %q, want 10 (one request's worth at 0.1 per second)", got)
	}
	if !strings.Contains(msg, "again in 10 s") || !strings.Contains(msg, "bursts of up to 3") {
		t.Errorf("message %q does not say when to retry and what the limit is", msg)
	}
	if n := len(e.farm.Calls()); n != slowLimit.Burst {
		t.Errorf("the farm was asked %d times, want %d: a refused request must do nothing", n, slowLimit.Burst)
	}

	// DELETE spends the same allowance.
	if r := e.do(e.strict, "DELETE", apiPrefix+"/webhooks/"+hookID, ""); r.StatusCode != 429 {
		t.Errorf("DELETE after the burst: %d %s, want 429", r.StatusCode, r.body)
	}
	// A refused request with a body is refused before the body is read.
	body := `{"requestedRenderConfig": {"colorManagementPreset": "default"}}`
	if r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/render", body); r.StatusCode != 429 {
		t.Errorf("render after the burst: %d %s, want 429", r.StatusCode, r.body)
	}
}

func TestRateLimitIsPerKey(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{RateLimit: slowLimit})
	cancel := apiPrefix + "/jobs/" + jobID + "/cancel"
	for range slowLimit.Burst + 1 {
		e.do(e.strict, "POST", cancel, "")
	}
	if r := e.do(e.strict, "POST", cancel, ""); r.StatusCode != 429 {
		t.Fatalf("the first key after its burst: %d, want 429", r.StatusCode)
	}
	for i := range slowLimit.Burst {
		r := e.do(e.strict, "POST", cancel, "", "Bearer "+otherKey)
		if r.StatusCode != 200 {
			t.Fatalf("request %d of another key: %d %s, want 200", i+1, r.StatusCode, r.body)
		}
	}
}

// Polling must stay cheap: reads are never limited, not even for a key
// that is over its allowance of changes.
func TestRateLimitLeavesReadsAlone(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{RateLimit: slowLimit})
	for range slowLimit.Burst + 1 {
		e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/cancel", "")
	}
	reads := []string{"/jobs/" + jobID + "/progress", "/jobs/progress", "/jobs/" + jobID, "/jobs", "/jobs/" + jobID + "/downloads", "/webhooks"}
	for i := range 30 {
		path := reads[i%len(reads)]
		if r := e.do(e.strict, "GET", apiPrefix+path, ""); r.StatusCode != 200 {
			t.Fatalf("GET %s number %d: %d %s, want 200", path, i+1, r.StatusCode, r.body)
		}
	}
	// HEAD is not in the document, so it goes without the checking client.
	if r := e.do(e.srv.Client(), "HEAD", apiPrefix+"/jobs/"+jobID, ""); r.StatusCode != 200 {
		t.Errorf("HEAD: %d, want 200", r.StatusCode)
	}
}

// A request without a valid key is refused as unauthorized, whatever the
// limit: it has no key to count against.
func TestRateLimitComesAfterAuthentication(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{RateLimit: httpapi.RateLimit{PerSecond: 0.1, Burst: 1}})
	for i := range 3 {
		if r := e.do(e.lenient, "POST", apiPrefix+"/jobs/"+jobID+"/cancel", "", "Bearer RJ-unknown"); r.StatusCode != 401 {
			t.Fatalf("request %d with an unknown key: %d, want 401", i+1, r.StatusCode)
		}
	}
	if r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/cancel", ""); r.StatusCode != 200 {
		t.Errorf("the first request of a known key: %d %s, want 200", r.StatusCode, r.body)
	}
}

func TestNoRateLimitByDefault(t *testing.T) {
	e := newEnv(t, nil, httpapi.Options{})
	for i := range 50 {
		if r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/cancel", ""); r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i+1, r.StatusCode, r.body)
		}
	}
}
