package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// What a default `renderfarm serve` lets others see of its metrics, which
// count every workspace's jobs: nothing, to those who can only reach the
// API. (Its files on disk: filemodes_unix_test.go.)

// getWithBearer GETs url with "Authorization: Bearer token" (none when
// token is "") and fails the test unless the answer has status want.
func getWithBearer(t *testing.T, url, token string, want int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s with token %q: %d, want %d: %.300s", url, token, resp.StatusCode, want, body)
	}
	return string(body)
}

var metricsAddrInLog = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// metricsURL is the base URL of the --metrics-addr that f logged.
func (f *farm) metricsURL() string {
	f.t.Helper()
	m := metricsAddrInLog.FindStringSubmatch(f.Log.String())
	if m == nil {
		f.t.Fatalf("serve logged no metrics address:\n%s", f.Log.String())
	}
	return "http://" + m[1]
}

// TestMetricsNeedTheAdminTokenOnTheAPIAddress: on the API's address,
// /metrics answers only "Authorization: Bearer <admin token>", and is not
// there at all without --admin-token; --metrics-addr serves it, and
// /healthz, without credentials.
func TestMetricsNeedTheAdminTokenOnTheAPIAddress(t *testing.T) {
	f := startFarm(t, "--admin-token", "s3cret-token", "--metrics-addr", "127.0.0.1:0")
	api := f.URL + "/metrics"
	getWithBearer(t, api, "", http.StatusUnauthorized)
	getWithBearer(t, api, "wrong-token", http.StatusUnauthorized)
	getWithBearer(t, api, "s3cret-token-and-more", http.StatusUnauthorized)
	// River's UI takes the token as a basic-auth password; /metrics does not.
	get(t, api, "s3cret-token", http.StatusUnauthorized)
	// An API key is no admin token.
	getWithBearer(t, api, f.Key("studio"), http.StatusUnauthorized)
	if body := getWithBearer(t, api, "s3cret-token", http.StatusOK); !strings.Contains(body, "renderfarm_workers 1") {
		t.Errorf("/metrics with the admin token lacks renderfarm_workers:\n%s", body)
	}

	local := f.metricsURL()
	if body := getWithBearer(t, local+"/metrics", "", http.StatusOK); !strings.Contains(body, "renderfarm_workers 1") {
		t.Errorf("/metrics on --metrics-addr lacks renderfarm_workers:\n%s", body)
	}
	getWithBearer(t, local+"/healthz", "", http.StatusOK)

	bare := startFarm(t)
	if body := getWithBearer(t, bare.URL+"/metrics", "", http.StatusNotFound); !strings.Contains(body, "NOT_FOUND") {
		t.Errorf("/metrics without --admin-token: %s, want the API's 404", body)
	}
	getWithBearer(t, bare.URL+"/metrics", "s3cret-token", http.StatusNotFound)
}

// TestAMetricsAddressInUseStopsServeAtStart: a second serve on a host
// whose metrics port is taken says so and exits, before it makes the
// first API key (which it would show only once).
func TestAMetricsAddressInUseStopsServeAtStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "serve", "--addr", "127.0.0.1:0", "--workers", "0",
		"--data-dir", dataDir, "--metrics-addr", taken.Addr().String())
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("serve with its metrics address taken: %v, want exit 1:\n%s", err, out)
	}
	for _, want := range []string{"--metrics-addr " + taken.Addr().String(), "address already in use", `--metrics-addr ""`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("serve's error lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "apiKey=") {
		t.Errorf("serve showed a first key, then stopped:\n%s", out)
	}
	if keys := listKeys(t, "--data-dir", dataDir); len(keys) != 0 {
		t.Errorf("serve made keys, then stopped: %+v", keys)
	}
}
