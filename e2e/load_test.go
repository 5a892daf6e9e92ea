package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// pollers is how many clients poll at once in the load test.
const pollers = 64

// pollLimit bounds how long the pollers run, whatever the render does.
const pollLimit = 60 * time.Second

// loadResult counts what the pollers saw.
type loadResult struct {
	requests, failures, refused atomic.Int64
	mu                          sync.Mutex
	examples                    []string
}

func (r *loadResult) fail(counter *atomic.Int64, format string, args ...any) {
	counter.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.examples) < 5 {
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
}

// poll runs pollers clients, each on a connection of its own, asking for
// the job's progress and, every fourth request, the list of jobs, one
// request after the other, until stop is closed or pollLimit has passed.
// Every answer must be a 2xx with a JSON body.
func poll(f *farm, key, jobID string, stop <-chan struct{}) *loadResult {
	res := &loadResult{}
	transport := &http.Transport{MaxIdleConnsPerHost: pollers, MaxConnsPerHost: pollers}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: time.Minute}
	api := f.URL + "/api/external/v1"
	deadline := time.After(pollLimit)
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-deadline:
		}
		close(done)
	}()
	var wg sync.WaitGroup
	for i := range pollers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				path := "/jobs/" + jobID + "/progress"
				if (i+n)%4 == 3 {
					path = "/jobs"
				}
				req, err := http.NewRequest(http.MethodGet, api+path, nil)
				if err != nil {
					res.fail(&res.failures, "%v", err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+key)
				res.requests.Add(1)
				resp, err := hc.Do(req)
				if err != nil {
					res.fail(&res.failures, "GET %s: %v", path, err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					res.fail(&res.failures, "GET %s: reading the body: %v", path, err)
				case resp.StatusCode/100 != 2:
					res.fail(&res.refused, "GET %s: %d %s", path, resp.StatusCode, body)
				case !json.Valid(body):
					res.fail(&res.failures, "GET %s: the body is not JSON: %.200s", path, body)
				}
			}
		})
	}
	wg.Wait()
	return res
}

// timedRender renders a validated job and answers how long it took from the
// render request to completed.
func timedRender(ctx context.Context, t *testing.T, c *client.Client, id string, cfg client.RenderConfig) time.Duration {
	t.Helper()
	start := time.Now()
	done := renderAndWait(ctx, t, c, id, cfg)
	took := time.Since(start)
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	return took
}

// TestSixtyFourClientsPollingWhileAJobRenders renders a job alone, then
// the same job again while 64 clients poll its progress and the job list
// as fast as they are answered: every request is answered 2xx with JSON,
// no request fails, and the render completes with every frame. Both
// render times are logged; on a shared machine they are not asserted.
func TestSixtyFourClientsPollingWhileAJobRenders(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)
	const frames = 10
	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{fmt.Sprintf("1-%d", frames)},
		Resolution:            []int{320, 180},
		SampleCount:           client.Int(24),
	}

	alone := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	quiet := timedRender(ctx, t, c, alone.ID, cfg)

	loaded := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	stop := make(chan struct{})
	results := make(chan *loadResult, 1)
	pollStart := time.Now()
	go func() { results <- poll(f, f.Key("studio"), loaded.ID, stop) }()
	busy := timedRender(ctx, t, c, loaded.ID, cfg)
	close(stop)
	res := <-results
	pollTime := time.Since(pollStart)

	t.Logf("render of %d frames: %.1f s alone, %.1f s with %d clients polling (%d requests in %.1f s, %.0f/s)",
		frames, quiet.Seconds(), busy.Seconds(), pollers, res.requests.Load(), pollTime.Seconds(), float64(res.requests.Load())/pollTime.Seconds())
	if res.requests.Load() < pollers {
		t.Errorf("only %d requests were sent", res.requests.Load())
	}
	if n, m := res.failures.Load(), res.refused.Load(); n != 0 || m != 0 {
		t.Errorf("%d requests failed and %d were answered other than 2xx, of %d; for example %q", n, m, res.requests.Load(), res.examples)
	}
	p, err := c.Progress(ctx, loaded.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesCompleted != frames || p.FramesTotal != frames {
		t.Errorf("progress under load %d/%d, want %d/%d", p.FramesCompleted, p.FramesTotal, frames, frames)
	}
	for _, fr := range p.Frames {
		if fr.Status != client.FrameCompleted || fr.Attempts != 1 {
			t.Errorf("frame %d = %s after %d attempts, want completed on the first", fr.Frame, fr.Status, fr.Attempts)
		}
	}
}
