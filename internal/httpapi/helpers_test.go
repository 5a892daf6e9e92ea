package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

const (
	testKey = "RJ-test-key"
	jobID   = "0192f5d6-3c1e-7a4b-9e2f-6b1d2c3e4f50"
	otherID = "6f1c2b7a-8d9e-4f01-a2b3-c4d5e6f7a8b9"
	hookID  = "3b9d6c1e-5f2a-4c7d-8e9f-0a1b2c3d4e5f"
	// testSecret is what the fake farm hands back on every webhook, so
	// that tests see the API leave it out where it does not belong.
	testSecret = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testSlug   = "k3x9q2"
	apiPrefix  = httpapi.BasePath
)

var testPrincipal = farm.Principal{WorkspaceID: "ws-1", KeyID: "key-1"}

// otherKey is a second key of the same workspace, which has an allowance
// of requests of its own.
const otherKey = "RJ-other-key"

var otherPrincipal = farm.Principal{WorkspaceID: "ws-1", KeyID: "key-2"}

// call is one Farm method call as the fake saw it.
type call struct {
	Method    string
	Principal farm.Principal
	ID        string // job or webhook id, slug, URL or API key, whichever the method takes
	Arg       any    // the remaining argument, if any
}

// fakeFarm answers with canned values, or err, and records what it was
// asked. It knows nothing of jobs: it exists to test HTTP concerns only.
type fakeFarm struct {
	mu    sync.Mutex
	calls []call

	err       error // returned by every method but Authenticate
	authErr   error // returned by Authenticate, when not nil
	panicMsg  string
	job       *farm.Job
	replay    bool
	page      *farm.JobPage
	ticket    *farm.UploadTicket
	progress  *farm.Progress
	running   []farm.Progress
	downloads *farm.Downloads
	jobLog    *farm.JobLog
	blender   *farm.BlenderOffers
	usage     *farm.Usage
	// webhook answers every method about one webhook, secret and all.
	webhook    *farm.Webhook
	webhooks   []farm.Webhook
	deliveries []farm.WebhookDelivery
}

func (f *fakeFarm) record(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	return f.err
}

// Calls returns the calls after authentication, which every test of an
// authenticated route would otherwise have to skip.
func (f *fakeFarm) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.Method != "Authenticate" {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeFarm) Authenticate(ctx context.Context, apiKey string) (farm.Principal, error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{Method: "Authenticate", ID: apiKey})
	authErr := f.authErr
	f.mu.Unlock()
	if authErr != nil {
		return farm.Principal{}, authErr
	}
	switch apiKey {
	case testKey:
		return testPrincipal, nil
	case otherKey:
		return otherPrincipal, nil
	}
	return farm.Principal{}, &farm.Error{Kind: farm.KindUnauthorized, Code: farm.CodeUnauthorized, Message: "unknown API key"}
}

func (f *fakeFarm) CreateUpload(ctx context.Context, p farm.Principal, fileName, fileType string) (*farm.UploadTicket, error) {
	if err := f.record(call{"CreateUpload", p, fileName, fileType}); err != nil {
		return nil, err
	}
	return f.ticket, nil
}

func (f *fakeFarm) CreateJob(ctx context.Context, p farm.Principal, slug string) (*farm.Job, error) {
	if err := f.record(call{"CreateJob", p, slug, nil}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) GetJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	if err := f.record(call{"GetJob", p, id, nil}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) ListJobs(ctx context.Context, p farm.Principal, q farm.ListQuery) (*farm.JobPage, error) {
	if err := f.record(call{"ListJobs", p, "", q}); err != nil {
		return nil, err
	}
	return f.page, nil
}

func (f *fakeFarm) Validate(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	if err := f.record(call{"Validate", p, id, nil}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) Render(ctx context.Context, p farm.Principal, id string, cfg *farm.RenderConfig) (*farm.Job, bool, error) {
	if err := f.record(call{"Render", p, id, cfg}); err != nil {
		return nil, false, err
	}
	return f.job, f.replay, nil
}

func (f *fakeFarm) Cancel(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	if err := f.record(call{"Cancel", p, id, nil}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) Suspend(ctx context.Context, p farm.Principal, id string) (*farm.Job, bool, error) {
	if err := f.record(call{"Suspend", p, id, nil}); err != nil {
		return nil, false, err
	}
	return f.job, f.replay, nil
}

func (f *fakeFarm) Resume(ctx context.Context, p farm.Principal, id string) (*farm.Job, bool, error) {
	if err := f.record(call{"Resume", p, id, nil}); err != nil {
		return nil, false, err
	}
	return f.job, f.replay, nil
}

func (f *fakeFarm) Retry(ctx context.Context, p farm.Principal, id string, req farm.RetryRequest) (*farm.Job, error) {
	if err := f.record(call{"Retry", p, id, req}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) SetPriority(ctx context.Context, p farm.Principal, id string, priority int) (*farm.Job, error) {
	if err := f.record(call{"SetPriority", p, id, priority}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) DeleteJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	if err := f.record(call{"DeleteJob", p, id, nil}); err != nil {
		return nil, err
	}
	return f.job, nil
}

func (f *fakeFarm) Progress(ctx context.Context, p farm.Principal, id string, q farm.ProgressQuery) (*farm.Progress, error) {
	if err := f.record(call{"Progress", p, id, q}); err != nil {
		return nil, err
	}
	return f.progress, nil
}

func (f *fakeFarm) RunningProgress(ctx context.Context, p farm.Principal, q farm.ProgressQuery) ([]farm.Progress, error) {
	if err := f.record(call{"RunningProgress", p, "", q}); err != nil {
		return nil, err
	}
	return f.running, nil
}

func (f *fakeFarm) Downloads(ctx context.Context, p farm.Principal, id string, q farm.DownloadsQuery) (*farm.Downloads, error) {
	if err := f.record(call{"Downloads", p, id, q}); err != nil {
		return nil, err
	}
	return f.downloads, nil
}

func (f *fakeFarm) JobLog(ctx context.Context, p farm.Principal, id string) (*farm.JobLog, error) {
	if err := f.record(call{"JobLog", p, id, nil}); err != nil {
		return nil, err
	}
	return f.jobLog, nil
}

// usageBounds is the period a usage request gave the farm: each bound as
// an RFC 3339 time, "" for one not given.
type usageBounds struct{ From, To string }

func (f *fakeFarm) Usage(ctx context.Context, p farm.Principal, from, to *time.Time, groupBy string) (*farm.Usage, error) {
	var given usageBounds
	if from != nil {
		given.From = from.Format(time.RFC3339)
	}
	if to != nil {
		given.To = to.Format(time.RFC3339)
	}
	if err := f.record(call{"Usage", p, groupBy, given}); err != nil {
		return nil, err
	}
	return f.usage, nil
}

func (f *fakeFarm) BlenderVersions(ctx context.Context, p farm.Principal) (*farm.BlenderOffers, error) {
	if err := f.record(call{"BlenderVersions", p, "", nil}); err != nil {
		return nil, err
	}
	return f.blender, nil
}

func (f *fakeFarm) CreateWebhook(ctx context.Context, p farm.Principal, url string, events []string) (*farm.Webhook, error) {
	if err := f.record(call{"CreateWebhook", p, url, events}); err != nil {
		return nil, err
	}
	return f.webhook, nil
}

func (f *fakeFarm) ListWebhooks(ctx context.Context, p farm.Principal) ([]farm.Webhook, error) {
	if err := f.record(call{"ListWebhooks", p, "", nil}); err != nil {
		return nil, err
	}
	return f.webhooks, nil
}

func (f *fakeFarm) GetWebhook(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error) {
	if err := f.record(call{"GetWebhook", p, id, nil}); err != nil {
		return nil, err
	}
	return f.webhook, nil
}

func (f *fakeFarm) DeleteWebhook(ctx context.Context, p farm.Principal, id string) error {
	return f.record(call{"DeleteWebhook", p, id, nil})
}

func (f *fakeFarm) RotateWebhookSecret(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error) {
	if err := f.record(call{"RotateWebhookSecret", p, id, nil}); err != nil {
		return nil, err
	}
	return f.webhook, nil
}

func (f *fakeFarm) WebhookDeliveries(ctx context.Context, p farm.Principal, id string) ([]farm.WebhookDelivery, error) {
	if err := f.record(call{"WebhookDeliveries", p, id, nil}); err != nil {
		return nil, err
	}
	return f.deliveries, nil
}

var _ httpapi.Farm = (*fakeFarm)(nil)

// syncBuffer is a log sink that server goroutines and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a running API over a fake farm, with clients whose every request
// and answer is checked against the OpenAPI document.
type env struct {
	t    *testing.T
	farm *fakeFarm
	srv  *httptest.Server
	log  *syncBuffer
	// strict fails the test on a request the document forbids; lenient
	// demands that the server refuse such a request with a 4xx. Both check
	// every answer against the document.
	strict, lenient *http.Client
}

func newEnv(t *testing.T, f *fakeFarm, opts httpapi.Options) *env {
	t.Helper()
	if f == nil {
		f = fullFarm()
	}
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	srv := httptest.NewServer(httpapi.New(f, opts))
	t.Cleanup(srv.Close)
	base := srv.Client().Transport
	return &env{
		t:       t,
		farm:    f,
		srv:     srv,
		log:     logs,
		strict:  &http.Client{Transport: apitest.ValidatingTransport(t, base)},
		lenient: &http.Client{Transport: apitest.LenientTransport(t, base)},
	}
}

// reply is an answer with its body read.
type reply struct {
	*http.Response
	body []byte
}

// decoded returns the body as generic JSON.
func (r reply) decoded(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	return v
}

// apiError returns the error object of an error answer.
func (r reply) apiError(t *testing.T) (code, message, field string) {
	t.Helper()
	var b struct {
		Error struct {
			Code, Message, Field string
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, r.body)
	}
	return b.Error.Code, b.Error.Message, b.Error.Field
}

// do sends a request with the test API key; auth "" sends none, and any
// other value is sent as the whole Authorization header.
func (e *env) do(c *http.Client, method, path, body string, auth ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	header := "Bearer " + testKey
	if len(auth) > 0 {
		header = auth[0]
	}
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{resp, b}
}

func ptr[T any](v T) *T { return &v }

// zone is not UTC, so that tests see the API convert times.
var zone = time.FixedZone("CEST", 2*60*60)

// fullJob has every field filled in, so that the document's description of
// each one is exercised.
func fullJob() *farm.Job {
	created := time.Date(2025, 6, 1, 12, 0, 0, 0, zone)
	return &farm.Job{
		ID:                jobID,
		Status:            farm.StatusCompleted,
		WorkspaceID:       testPrincipal.WorkspaceID,
		UserID:            testPrincipal.KeyID,
		CreatedAt:         created,
		UpdatedAt:         created.Add(90 * time.Second),
		RootFolderID:      ptr("folder-1"),
		NormalizedSeconds: 42.5,
		PreviewURL:        ptr("http://farm.example/objects/jobs/x/preview.mp4?expires=1&sig=ab"),
		FailedReason:      nil,
		RequestedConfig: &farm.RenderConfig{
			ColorManagementPreset: ptr("default"),
			FrameRanges:           []string{"1-3"},
			SampleCount:           ptr(16),
			Resolution:            []int{320, 180},
			OutputSettings:        &farm.OutputSettings{ColorMode: ptr("RGBA"), Compression: ptr(15)},
			ChunkSize:             ptr(2),
			BlenderVersion:        ptr("4.3"),
		},
		FinalConfig: &farm.FinalConfig{
			Scene:                 "Scene",
			FrameRanges:           []string{"1-3"},
			FrameCount:            3,
			ColorManagementPreset: "default",
			RenderEngine:          "CYCLES",
			ComputeDeviceType:     "CPU",
			CompositorDevice:      "CPU",
			SampleCount:           16,
			Resolution:            []int{320, 180},
			ResolutionPercentage:  100,
			OutputFormat:          "PNG",
			FPS:                   24,
			OutputSettings:        farm.FinalOutputSettings{ColorMode: "RGBA", Compression: ptr(15)},
			ChunkSize:             2,
			BlenderVersion:        "4.3.2",
		},
		Output:            farm.JobOutput{IsDeletedForClient: false},
		IsAnalysisSkipped: false,
		AnalysisID:        ptr("analysis-1"),
		Analysis: &farm.Analysis{
			Inspection: farm.Inspection{
				FileVersion:       "3.4",
				BlenderVersion:    "3.4.1",
				DenoiserAvailable: false,
				ActiveScene:       "Scene",
				Scenes: []farm.Scene{{
					Name: "Scene", FrameStart: 1, FrameEnd: 3, FrameStep: 1, FPS: 24,
					ResolutionX: 320, ResolutionY: 180, ResolutionPercentage: 100,
					Engine: "CYCLES", Samples: 32, Camera: "Camera", OutputFormat: "PNG",
					ColorMode: "RGBA", ColorDepth: "8", DenoisingEnabled: true, Denoiser: "OPENIMAGEDENOISE",
					ViewLayers: nil, // the API must send [] for it
				}},
				ExternalFiles: []farm.ExternalFile{{Type: "image", Name: "wood.png", Path: "//textures/wood.png", Missing: true}},
			},
			RenderBlenderVersion: "3.4.1",
			FarmBlenderVersions:  []string{"3.4.1", "4.3.2"},
			Warnings: []farm.Warning{
				{Code: farm.WarnMissingFile, Message: "//textures/wood.png is missing; it renders pink", Path: "//textures/wood.png"},
				{Code: farm.WarnDenoiserUnavailable, Message: "this Blender has no OpenImageDenoise; rendering without denoising"},
			},
		},
		SceneFile: &farm.SceneFile{
			FileName: "scene.blend", FileType: "blend", SizeBytes: 123456,
			SHA256:    strings.Repeat("ab", 32),
			BlendPath: "scene.blend", Compression: "zstd", Version: "3.4",
		},
		Slug: testSlug,
	}
}

// newJob is a job just created: every nullable field is null.
func newJob() *farm.Job {
	created := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return &farm.Job{
		ID: otherID, Status: farm.StatusCreated,
		WorkspaceID: testPrincipal.WorkspaceID, UserID: testPrincipal.KeyID,
		CreatedAt: created, UpdatedAt: created, Slug: testSlug,
	}
}

func fullProgress() farm.Progress {
	return farm.Progress{
		JobID: jobID, Status: farm.StatusRendering,
		FramesTotal: 3, FramesCompleted: 1, FramesRendering: 1,
		PercentComplete: 33.3, EtaSeconds: ptr(12.5),
		Frames: []farm.FrameProgress{
			{Frame: 1, Status: farm.FrameCompleted, Worker: "node-1", RenderSeconds: 4.2, Attempts: 1},
			{Frame: 2, Status: farm.FrameRendering, Worker: "node-1", Attempts: 1},
			{Frame: 3, Status: farm.FrameQueued},
		},
		WaitingFor: "a render node with Blender 4.3.2: no live render node runs it",
	}
}

func fullDownloads() *farm.Downloads {
	u := func(name string) string {
		return "http://farm.example/objects/jobs/" + jobID + "/" + name + "?expires=1&sig=ab"
	}
	zip := farm.FileOutput{URL: u("frames.zip"), FileName: "frames.zip", RelativePath: "frames.zip"}
	return &farm.Downloads{
		Frames:         []string{u("frames/0001.png")},
		CompositeNodes: nil,
		Transforms: farm.Transforms{
			FramesZip:        ptr(u("frames.zip")),
			Video:            &farm.VideoOutput{URL: u("preview.mp4"), FileName: "preview.mp4", Codec: "h264", FPS: 24, SizeBytes: 2048},
			FramesZipOutputs: &zip,
		},
		FrameOutputs: []farm.FileOutput{{
			URL: u("frames/0001.png"), FileName: "0001.png", RelativePath: "frames/0001.png",
			View: ptr("ViewLayer"), Frame: ptr(1), SizeBytes: 1024,
		}},
	}
}

var allEvents = []string{"onRenderComplete", "onRenderFail", "onStatusChange"}

// fullWebhook has every field filled in, the secret included, and a URL
// with a query, which must come back unescaped.
func fullWebhook() *farm.Webhook {
	return &farm.Webhook{
		ID:        hookID,
		URL:       "https://pipeline.example.com/renderfarm?team=a&stage=b",
		Events:    allEvents,
		Secret:    testSecret,
		CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, zone),
	}
}

// fullDeliveries are the attempts at one event, newest first: a timeout, a
// refusal that is retried, then success.
func fullDeliveries() []farm.WebhookDelivery {
	const event = "a7e1c0de-2b3c-4d5e-8f90-1a2b3c4d5e6f"
	first := time.Date(2025, 6, 1, 12, 0, 0, 0, zone)
	return []farm.WebhookDelivery{
		{ID: "c3000000-0000-4000-8000-000000000003", DeliveryID: event, Event: "onRenderComplete", JobID: jobID,
			Attempt: 3, AttemptedAt: first.Add(40 * time.Second), HTTPStatus: ptr(200), DurationMs: 85},
		{ID: "c2000000-0000-4000-8000-000000000002", DeliveryID: event, Event: "onRenderComplete", JobID: jobID,
			Attempt: 2, AttemptedAt: first.Add(5 * time.Second), HTTPStatus: ptr(503),
			Error: ptr("the receiver answered 503 Service Unavailable"), DurationMs: 12, NextRetryAt: ptr(first.Add(35 * time.Second))},
		{ID: "c1000000-0000-4000-8000-000000000001", DeliveryID: event, Event: "onRenderComplete", JobID: jobID,
			Attempt: 1, AttemptedAt: first, Error: ptr("context deadline exceeded"), DurationMs: 7000,
			NextRetryAt: ptr(first.Add(5 * time.Second))},
	}
}

// fullFarm answers every method with a filled-in value.
func fullFarm() *fakeFarm {
	running := fullProgress()
	single := fullProgress()
	usageTo := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := farm.UsageRow{Day: "2026-11-30", RenderSeconds: 12.5, Frames: 3, BytesStored: 300, BytesTransferred: 100}
	total := day
	total.Day = ""
	return &fakeFarm{
		usage: &farm.Usage{From: usageTo.AddDate(0, 0, -30), To: usageTo, GroupBy: farm.UsageByDay, Rows: []farm.UsageRow{day}, Total: total},
		job:   fullJob(),
		page: &farm.JobPage{
			Jobs:       []farm.Job{*fullJob(), *newJob()},
			Pagination: farm.Pagination{Page: 1, PageSize: 10, Total: 2, TotalPages: 1},
		},
		ticket: &farm.UploadTicket{
			UploadURL: "http://farm.example/objects/uploads/" + testSlug + "/scene.blend?expires=1&sig=ab",
			Slug:      testSlug,
			ExpiresAt: time.Date(2025, 6, 1, 12, 15, 0, 0, zone),
		},
		progress:  &single,
		running:   []farm.Progress{running},
		downloads: fullDownloads(),
		jobLog: &farm.JobLog{Lines: []string{
			"Fra:2 Mem:120.5M | Syncing Cube",
			"Error: Not freed memory blocks: 3",
		}},
		blender:    &farm.BlenderOffers{Versions: []farm.BlenderOffer{{Version: "3.4.1", Workers: 2}, {Version: "4.3.2", Workers: 1}}},
		webhook:    fullWebhook(),
		webhooks:   []farm.Webhook{*fullWebhook()},
		deliveries: fullDeliveries(),
	}
}
