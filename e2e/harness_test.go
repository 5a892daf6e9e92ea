// Package e2e drives renderfarm serve, with the real Blender and ffmpeg,
// through the public client package, checking every response against the
// OpenAPI document. A farm runs in the test's process (apptest.Start)
// unless the test's point is a real process: one killed with SIGKILL,
// stopped with SIGTERM, started in a directory of its own, or the
// distributed shape's render nodes (apptest.StartProcess, the binary).
package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

func TestMain(m *testing.M) { os.Exit(apptest.Main(m)) }

// requireTools skips a test when Blender or ffmpeg is not installed.
func requireTools(t *testing.T) { apptest.RequireTools(t) }

// farm is one `renderfarm serve` of a test.
type farm struct {
	*apptest.Farm
	t *testing.T
}

// startFarm starts serve in the test's process on a fresh data directory.
func startFarm(t *testing.T, args ...string) *farm {
	t.Helper()
	requireTools(t)
	return &farm{Farm: apptest.Start(t, args...), t: t}
}

// startProcessFarm starts the real binary's serve, for a test that kills
// or signals it.
func startProcessFarm(t *testing.T, args ...string) *farm {
	t.Helper()
	requireTools(t)
	return &farm{Farm: apptest.StartProcess(t, args...), t: t}
}

// waitWorkDone waits until the farm, which runs in the test's process, has
// no River job of the given kinds still to run or running: every such
// piece of work has ended, and nothing of it can write any more.
func (f *farm) waitWorkDone(kinds ...string) {
	f.t.Helper()
	if f.Main() == nil {
		f.t.Fatal("waitWorkDone needs a farm in the test's process")
	}
	params := river.NewJobListParams().Kinds(kinds...).First(1).States(
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled)
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := f.Main().River().JobList(f.t.Context(), params)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(res.Jobs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("River job %s (%s) still %s after a minute", res.Jobs[0].Kind, res.Jobs[0].EncodedArgs, res.Jobs[0].State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// binary is the real renderfarm binary, built on first use.
func binary(t *testing.T) string { return apptest.Binary(t) }

// client returns an API client for a workspace whose every exchange is
// checked against the OpenAPI document.
func (f *farm) client(workspace string) *client.Client {
	return f.clientWith(workspace, apitest.ValidatingTransport(f.t, http.DefaultTransport))
}

// lenientClient is client for tests that send requests the API document
// forbids on purpose: the answers are still checked against it.
func (f *farm) lenientClient(workspace string) *client.Client {
	return f.clientWith(workspace, apitest.LenientTransport(f.t, http.DefaultTransport))
}

func (f *farm) clientWith(workspace string, transport http.RoundTripper) *client.Client {
	hc := &http.Client{Transport: transport, Timeout: 2 * time.Minute}
	return client.New(f.URL, f.Key(workspace), client.WithHTTPClient(hc), client.WithPollInterval(100*time.Millisecond))
}

// scene is the path of a test scene made by testdata/scenes/make_scenes.py.
func scene(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "scenes", name)
}

// submit uploads a file and creates its job.
func submit(ctx context.Context, t *testing.T, c *client.Client, path string) *client.Job {
	t.Helper()
	slug, err := c.UploadFile(ctx, path, nil)
	if err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	if job.Status != client.StatusCreated {
		t.Fatalf("new job status = %s, want created", job.Status)
	}
	return job
}

// validate validates a job and waits for the outcome.
func validate(ctx context.Context, t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	if _, err := c.Validate(ctx, id); err != nil {
		t.Fatalf("validate: %v", err)
	}
	job, err := c.Wait(ctx, id, client.UntilStatus(client.StatusValidated, client.StatusFailed), nil)
	if err != nil {
		t.Fatalf("wait for validation: %v", err)
	}
	return job
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

func asExitError(err error, target **exec.ExitError) bool {
	return errors.As(err, target)
}
