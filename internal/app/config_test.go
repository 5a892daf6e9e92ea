package app

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/housekeeping"
	"github.com/renderfarm/renderfarm/internal/node"
	"github.com/renderfarm/renderfarm/internal/service"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestFlagsDefaultToTheLibrariesDefaults: a process started with no flag
// configures every part exactly as the part's own DefaultConfig does, so
// the defaults the flags show and the libraries' cannot disagree.
func TestFlagsDefaultToTheLibrariesDefaults(t *testing.T) {
	for _, role := range []Role{Serve, Worker} {
		t.Run(string(role), func(t *testing.T) {
			args := []string{}
			if role == Worker {
				args = []string{"--database", "postgres://farm@db/farm", "--storage", "s3://bucket"}
			}
			c, err := ParseConfig(role, args, NewFlagSet(string(role), io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			if want := engine.DefaultConfig(); c.engineConfig().RenderAttempts != want.RenderAttempts || c.engineConfig().WebhookAttempts != want.WebhookAttempts {
				t.Errorf("engine = %+v, want %+v", c.engineConfig(), want)
			}
			if role == Serve {
				if got, want := c.serviceConfig(), service.DefaultConfig(); !reflect.DeepEqual(got, want) {
					t.Errorf("service = %+v, want %+v", got, want)
				}
			}
			got, want := c.nodeConfig(), node.DefaultConfig()
			want.WorkDir = c.workDir()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("node = %+v, want %+v", got, want)
			}
			hk, wantHK := c.housekeepingConfig(), housekeeping.DefaultConfig()
			wantHK.DeliverWebhooks = role == Serve
			if !reflect.DeepEqual(hk, wantHK) {
				t.Errorf("housekeeping = %+v, want %+v", hk, wantHK)
			}
		})
	}
}

// TestEveryFlagSetsItsField: each flag, given, reaches the part it
// configures.
func TestEveryFlagSetsItsField(t *testing.T) {
	c, err := ParseConfig(Serve, []string{"--workers", "3", "--worker-timeout", "20s", "--upload-url-ttl", "1m",
		"--upload-retention", "2h", "--max-upload-bytes", "1GiB", "--webhook-attempts", "4", "--max-project-bytes", "1MiB",
		"--outage-tolerance", "90s", "--disk-reserve", "1GiB", "--max-failed-chunks", "5", "--tags", "gpu,fast", "--gpu", "CUDA:2", "--gpu", "optix:2"},
		NewFlagSet("serve", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.serviceConfig(); s.LocalRenderSlots != 3 || s.WorkerTimeout.Seconds() != 20 || s.UploadURLTTL.Minutes() != 1 || s.MaxUploadBytes != 1<<30 {
		t.Errorf("service = %+v", s)
	}
	if n := c.nodeConfig(); n.Slots != 3 || n.HeartbeatInterval.Seconds() != 5 || n.ZipLimits.MaxTotalBytes != 1<<20 ||
		n.OutageTolerance.Seconds() != 90 || n.DiskReserve != 1<<30 || n.MaxFailedChunks != 5 ||
		fmt.Sprint(n.Tags) != "[fast gpu]" || farm.FormatGPUs(n.GPUs) != "CUDA:2,OPTIX:2" {
		t.Errorf("node = %+v", n)
	}
	if h := c.housekeepingConfig(); h.WorkerTimeout.Seconds() != 20 || h.UploadRetention.Hours() != 2 || h.UploadURLTTL.Minutes() != 1 {
		t.Errorf("housekeeping = %+v", h)
	}
	if e := c.engineConfig(); e.WebhookAttempts != 4 || e.WorkerTimeout.Seconds() != 20 {
		t.Errorf("engine = %+v", e)
	}
	for _, bad := range [][]string{
		{"--gpu", "TPU:1"}, {"--gpu", "CUDA:0"}, {"--gpu", "CUDA:65"}, {"--gpu", "CUDA:1", "--gpu", "cuda:2"},
		{"--gpu", "auto", "--gpu", "CUDA:1"}, {"--tags", "GPU"}, {"--tags", "a b"},
	} {
		if _, err := ParseConfig(Worker, append([]string{"--database", "postgres://x", "--storage", "s3://b"}, bad...), NewFlagSet("worker", io.Discard)); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
	if c, err := ParseConfig(Worker, []string{"--database", "postgres://x", "--storage", "s3://b", "--gpu", "auto"}, NewFlagSet("worker", io.Discard)); err != nil || !c.GPUAuto {
		t.Errorf("--gpu auto = %+v, %v; want GPUAuto", c.GPUAuto, err)
	}
	if _, err := ParseConfig(Serve, []string{"--upload-retention", "1m"}, NewFlagSet("serve", io.Discard)); err == nil {
		t.Error("a retention no longer than the upload URLs' life was accepted")
	}
	// The history is kept for ever, or at least 31 days.
	for flag, ok := range map[string]bool{"0": true, "744h": true, "8760h": true, "24h": false, "-1h": false} {
		c, err := ParseConfig(Serve, []string{"--history-retention", flag}, NewFlagSet("serve", io.Discard))
		if (err == nil) != ok {
			t.Errorf("--history-retention %s: %v, want accepted %v", flag, err, ok)
		}
		if ok && c.HistoryRetention.String() != map[string]string{"0": "0s", "744h": "744h0m0s", "8760h": "8760h0m0s"}[flag] {
			t.Errorf("--history-retention %s = %v", flag, c.HistoryRetention)
		}
	}
	for _, bad := range [][]string{{"--outage-tolerance", "0s"}, {"--disk-reserve", "-1"}, {"--max-failed-chunks", "0"}} {
		if _, err := ParseConfig(Serve, bad, NewFlagSet("serve", io.Discard)); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}

// TestDatabaseConnectionsBoundsTheProcessNotItsConcurrency: a worker's
// PostgreSQL pool is --database-connections, whatever its --concurrency;
// out of range it is refused with the range to give.
func TestDatabaseConnectionsBoundsTheProcessNotItsConcurrency(t *testing.T) {
	backend := []string{"--database", "postgres://x", "--storage", "s3://b"}
	c, err := ParseConfig(Worker, append(backend, "--concurrency", "50"), NewFlagSet("worker", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseConnections != store.DefaultPostgresConnections {
		t.Errorf("--concurrency 50 without --database-connections: a pool of %d, want the default %d", c.DatabaseConnections, store.DefaultPostgresConnections)
	}
	c, err = ParseConfig(Worker, append(backend, "--concurrency", "50", "--database-connections", "4"), NewFlagSet("worker", io.Discard))
	if err != nil || c.DatabaseConnections != 4 {
		t.Errorf("--database-connections 4 = %d, %v", c.DatabaseConnections, err)
	}
	for _, bad := range []string{"0", "-1", fmt.Sprint(MaxDatabaseConnections + 1)} {
		_, err := ParseConfig(Worker, append(backend, "--database-connections", bad), NewFlagSet("worker", io.Discard))
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), fmt.Sprintf("give 1 to %d", MaxDatabaseConnections)) {
			t.Errorf("--database-connections %s: %v, want a usage error with the range", bad, err)
		}
	}
}

// TestUploadIdleTimeoutIsBoundedBelowTheAbandonedUploadAge: an upload
// may stall at most half an hour before it is cut; longer, its temp file
// could be taken for a killed process's, which goes after an hour
// unwritten. A longer timeout is refused naming the bound.
func TestUploadIdleTimeoutIsBoundedBelowTheAbandonedUploadAge(t *testing.T) {
	c, err := ParseConfig(Serve, []string{"--upload-idle-timeout", "30m"}, NewFlagSet("serve", io.Discard))
	if err != nil || c.UploadIdleTimeout != MaxUploadIdleTimeout {
		t.Errorf("--upload-idle-timeout 30m = %v, %v", c.UploadIdleTimeout, err)
	}
	_, err = ParseConfig(Serve, []string{"--upload-idle-timeout", "31m"}, NewFlagSet("serve", io.Discard))
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "at most 30m0s") {
		t.Errorf("--upload-idle-timeout 31m: %v, want a usage error naming the bound", err)
	}
}

// TestServeDownloadsIsForABucket: --serve-downloads sends a bucket's
// downloads through serve; without a bucket it would mean nothing (the
// files in --data-dir are always served so), and is refused saying so.
func TestServeDownloadsIsForABucket(t *testing.T) {
	c, err := ParseConfig(Serve, []string{"--database", "postgres://x", "--storage", "s3://b", "--serve-downloads"}, NewFlagSet("serve", io.Discard))
	if err != nil || !c.ServeDownloads {
		t.Errorf("--serve-downloads with a bucket: %v, %v", c.ServeDownloads, err)
	}
	_, err = ParseConfig(Serve, []string{"--serve-downloads"}, NewFlagSet("serve", io.Discard))
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--storage") {
		t.Errorf("--serve-downloads without --storage: %v, want a usage error naming --storage", err)
	}
}

// TestAWorkersNameAliasHasNoVariableOfItsOwn: a worker's --name is
// another name of --worker-name. RENDERFARM_NAME, the variable of
// `keys create --name`, does not name a worker; RENDERFARM_WORKER_NAME
// does, and either flag on the command line wins over it.
func TestAWorkersNameAliasHasNoVariableOfItsOwn(t *testing.T) {
	backend := []string{"--database", "postgres://x", "--storage", "s3://b"}
	parse := func(args ...string) string {
		t.Helper()
		c, err := ParseConfig(Worker, append(slices.Clone(backend), args...), NewFlagSet("worker", io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		return c.WorkerName
	}
	def := parse()
	t.Setenv("RENDERFARM_NAME", "a key's name")
	if got := parse(); got != def {
		t.Errorf("with RENDERFARM_NAME set, the worker is named %q, want the default %q", got, def)
	}
	if got := parse("--worker-name", "render-07"); got != "render-07" {
		t.Errorf("--worker-name render-07 with RENDERFARM_NAME set: %q", got)
	}
	t.Setenv("RENDERFARM_WORKER_NAME", "from-env")
	if got := parse(); got != "from-env" {
		t.Errorf("RENDERFARM_WORKER_NAME=from-env: %q", got)
	}
	if got := parse("--name", "render-08"); got != "render-08" {
		t.Errorf("--name render-08 with RENDERFARM_WORKER_NAME set: %q, want the command line's", got)
	}
}
