package main_test

// The client commands as a person or a script runs them: the real
// renderfarm binary against a real `renderfarm serve`, with the real
// Blender and ffmpeg, and no terminal attached.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/service"
)

func TestMain(m *testing.M) {
	code := apptest.Main(m)
	theFarm.stop()
	os.Exit(code)
}

// farm is one renderfarm serve, in the tests' own process, shared by every
// test that needs a farm: starting Blender-backed servers per test would
// spend the time budget on start-ups. The commands the tests run are the
// real binary.
type farm struct {
	once    sync.Once
	err     error
	dataDir string
	main    *app.Main
	log     apptest.LogBuffer
	url     string
	key     string
}

var theFarm farm

// sharedFarm starts the farm on first use, with two workers so that
// tests running in parallel do not queue behind each other's renders.
func sharedFarm(t *testing.T) *farm {
	t.Helper()
	apptest.RequireTools(t)
	theFarm.once.Do(theFarm.start)
	if theFarm.err != nil {
		t.Fatalf("start renderfarm serve: %v\n%s", theFarm.err, theFarm.log.String())
	}
	return &theFarm
}

func (f *farm) start() {
	f.dataDir, f.err = os.MkdirTemp("", "renderfarm-cli-data-")
	if f.err != nil {
		return
	}
	args := []string{"--addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir", f.dataDir, "--workers", "2", "--webhook-allow-private"}
	cfg, err := app.ParseConfig(app.Serve, args, app.NewFlagSet("serve", &f.log))
	if err != nil {
		f.err = err
		return
	}
	f.main = app.NewMain(cfg, &f.log)
	if f.err = f.main.Run(context.Background()); f.err != nil {
		return
	}
	f.url = f.main.URL()
	f.key, f.err = service.CreateAPIKey(context.Background(), f.main.Store(), "cli")
}

func (f *farm) stop() {
	if f.main != nil {
		f.main.Close()
	}
	if f.dataDir != "" {
		_ = os.RemoveAll(f.dataDir)
	}
}

// env is what a user of this farm would have set in their shell.
func (f *farm) env() []string {
	return append(cleanEnv(), "RENDERFARM_SERVER="+f.url, "RENDERFARM_API_KEY="+f.key)
}

// cleanEnv is the test's environment without any RENDERFARM_ variable, so
// that a developer's own settings cannot change what a test sees.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RENDERFARM_") {
			env = append(env, kv)
		}
	}
	return env
}

// result is how one run of the command ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// renderfarm runs the binary with env and args, as a script would: no
// terminal on any of its streams. Every run is checked for control
// characters, since none of the tests has a terminal.
func renderfarm(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(apptest.Binary(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run renderfarm %v: %v", args, err)
	}
	requirePlain(t, args, r)
	return r
}

// requirePlain fails when output meant for a log has a byte that is not
// printable text, a newline or a tab: escape codes and carriage returns
// are for terminals only.
func requirePlain(t *testing.T, args []string, r result) {
	t.Helper()
	for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
		for i := 0; i < len(out); i++ {
			if b := out[i]; (b < 0x20 && b != '\n' && b != '\t') || b == 0x7f {
				t.Fatalf("renderfarm %v wrote control character %#x to %s at byte %d, without a terminal:\n%s", args, b, name, i, r)
			}
		}
	}
}

func scene(name string) string {
	return filepath.Join("..", "..", "testdata", "scenes", name)
}

var jobIDPattern = regexp.MustCompile(`job ([0-9a-f-]{36})`)

// jobID finds the id of the job a command made in what it printed.
func jobID(t *testing.T, r result) string {
	t.Helper()
	m := jobIDPattern.FindStringSubmatch(r.stdout + r.stderr)
	if m == nil {
		t.Fatalf("no job id in the output:\n%s", r)
	}
	return m[1]
}

func TestSubmitWaitDownloadThenFollowUpCommands(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	dir := filepath.Join(t.TempDir(), "frames")

	r := renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1-3", "--wait", "--download", dir)
	if r.code != 0 {
		t.Fatalf("submit: want exit 0, got\n%s", r)
	}
	id := jobID(t, r)
	for _, want := range []string{"validated", "rendering frames 1-3 (3)", "completed, 3 frames"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not say %q:\n%s", want, r)
		}
	}
	// Every warning of the analysis stands out in what submit printed.
	job, err := client.New(f.url, f.key).GetJob(t.Context(), id)
	if err != nil || job.Analysis == nil {
		t.Fatalf("the job's analysis: %+v, %v", job, err)
	}
	for _, w := range job.Analysis.Warnings {
		if !strings.Contains(r.stdout, "WARNING "+w.Code) {
			t.Errorf("stdout does not show the warning %s:\n%s", w.Code, r)
		}
	}
	for _, want := range []string{"uploading cube.blend: 100% (98.3 kB of 98.3 kB)", "completed: 3/3 frames", "downloaded frame_0001.png"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r)
		}
	}
	for _, name := range []string{"frame_0001.png", "frame_0002.png", "frame_0003.png"} {
		requirePNG(t, filepath.Join(dir, name), 64, 36)
	}
	requireZipOf(t, filepath.Join(dir, "frames.zip"), 3)
	if info, err := os.Stat(filepath.Join(dir, "preview.mp4")); err != nil || info.Size() == 0 {
		t.Errorf("preview.mp4: %v", err)
	}

	t.Run("download again skips every file", func(t *testing.T) {
		before := modTimes(t, dir)
		r := renderfarm(t, f.env(), "download", id, dir)
		if r.code != 0 || !strings.Contains(r.stdout, "0 downloaded (0 B), 5 already there") {
			t.Fatalf("download: want exit 0 and 5 files skipped, got\n%s", r)
		}
		if after := modTimes(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("files were written again: before %v, after %v", before, after)
		}
	})

	t.Run("status --json prints the completed job", func(t *testing.T) {
		r := renderfarm(t, f.env(), "status", id, "--json")
		var job client.Job
		if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || r.code != 0 {
			t.Fatalf("status --json: %v\n%s", err, r)
		}
		if job.ID != id || job.Status != client.StatusCompleted || job.FinalConfig.FrameCount != 3 {
			t.Errorf("job = %s %s %+v, want %s completed with 3 frames", job.ID, job.Status, job.FinalConfig, id)
		}
	})

	t.Run("jobs --json lists it", func(t *testing.T) {
		r := renderfarm(t, f.env(), "jobs", "--json", "--status", "completed")
		var list client.JobList
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
			t.Fatalf("jobs --json: %v\n%s", err, r)
		}
		found := false
		for _, j := range list.Jobs {
			found = found || j.ID == id
		}
		if !found || list.Pagination.Total < 1 {
			t.Errorf("jobs --json has no job %s: %+v", id, list)
		}
	})

	t.Run("progress shows the frames done", func(t *testing.T) {
		r := renderfarm(t, f.env(), "progress", id)
		if r.code != 0 || !strings.Contains(r.stdout, "completed: 3/3 frames") {
			t.Errorf("progress: want 3/3 frames, got\n%s", r)
		}
	})

	t.Run("progress --frames lists a span of the frames and counts them all", func(t *testing.T) {
		r := renderfarm(t, f.env(), "progress", id, "--frames", "2-3", "--json")
		var p client.Progress
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &p) != nil || p.FramesTotal != 3 || p.FramesCompleted != 3 ||
			len(p.Frames) != 2 || p.Frames[0].Frame != 2 || p.Frames[1].Frame != 3 {
			t.Errorf("progress --frames 2-3: want frames 2 and 3 of 3 counted, got\n%s", r)
		}
		for _, bad := range [][]string{{"progress", "--frames", "1-2"}, {"progress", id, "--frames", "3-1"}, {"progress", id, "--frames", "1-3x2"}} {
			if r := renderfarm(t, f.env(), bad...); r.code != 2 || !strings.Contains(r.stderr, "--frames") {
				t.Errorf("%q: want exit 2 naming --frames, got\n%s", bad, r)
			}
		}
	})

	t.Run("cancel of a finished job is refused with the API's reason", func(t *testing.T) {
		r := renderfarm(t, f.env(), "cancel", id)
		if r.code != 2 || !strings.Contains(r.stderr, "400 INVALID_STATE") || !strings.Contains(r.stderr, "cannot cancel a job that is completed") {
			t.Errorf("cancel: want exit 2 with the API's message, got\n%s", r)
		}
	})
}

func TestSubmitProjectFolderWithJSONOutput(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)

	r := renderfarm(t, f.env(), "submit", scene("project"), "--frames", "1", "--wait", "--json")
	if r.code != 0 {
		t.Fatalf("submit: want exit 0, got\n%s", r)
	}
	// With --json, stdout is the job and nothing else.
	var job client.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil {
		t.Fatalf("stdout is not one JSON job: %v\n%s", err, r)
	}
	if job.Status != client.StatusCompleted || job.SceneFile == nil || job.SceneFile.FileName != "project.zip" || job.SceneFile.FileType != client.FileTypeZip {
		t.Errorf("job = %s from %+v, want completed from project.zip", job.Status, job.SceneFile)
	}
	if job.Analysis == nil || len(job.Analysis.ExternalFiles) != 1 || job.Analysis.ExternalFiles[0].Missing {
		t.Errorf("analysis = %+v, want the texture found beside the .blend", job.Analysis)
	}
	if !strings.Contains(r.stderr, "external files: 1, all found") {
		t.Errorf("stderr does not report the external file:\n%s", r)
	}
}

func TestSubmitCorruptFileExits1WithTheReason(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	path := filepath.Join(t.TempDir(), "corrupt.blend")
	garbage := bytes.Repeat([]byte("not blender data "), 200)
	if err := os.WriteFile(path, append([]byte("BLENDER-v304"), garbage...), 0o644); err != nil {
		t.Fatal(err)
	}

	// --no-pack: the local Blender would refuse the file before the farm.
	r := renderfarm(t, f.env(), "submit", path, "--wait", "--no-pack")
	if r.code != 1 {
		t.Fatalf("submit: want exit 1, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "failed during validation: BLENDER_CANNOT_OPEN_FILE: ") {
		t.Errorf("stderr does not give the failed reason:\n%s", r)
	}
}

func TestCtrlCStopsWaitingButNotTheJob(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)

	// Frames of many samples make the render last long enough to be
	// interrupted in the middle, and canceled after: the test cancels it
	// long before its end.
	cmd := exec.Command(apptest.Binary(t), "submit", scene("cube.blend"), "--frames", "1-24", "--chunk-size", "1",
		"--resolution", "320x180", "--samples", "256", "--wait")
	cmd.Env = f.env()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	sc := bufio.NewScanner(stderrPipe)
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "rendering: ") {
			_ = cmd.Process.Signal(os.Interrupt)
			break
		}
	}
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
	}
	_ = cmd.Wait()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	requirePlain(t, nil, r)
	if r.code != 130 {
		t.Fatalf("interrupted submit: want exit 130, got\n%s", r)
	}
	id := jobID(t, r)
	if !strings.Contains(r.stderr, "renderfarm status "+id) {
		t.Errorf("the message does not say how to follow the job again:\n%s", r)
	}

	status := renderfarm(t, f.env(), "status", id, "--json")
	var job client.Job
	if err := json.Unmarshal([]byte(status.stdout), &job); err != nil {
		t.Fatalf("status --json: %v\n%s", err, status)
	}
	if job.Status == client.StatusCanceled {
		t.Fatalf("Ctrl-C canceled the job; it should only stop the waiting")
	}

	if r := renderfarm(t, f.env(), "cancel", id); r.code != 0 || !strings.Contains(r.stdout, "canceled") {
		t.Fatalf("cancel: want exit 0, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "status", id, "--wait"); r.code != 3 || !strings.Contains(r.stderr, "was canceled") {
		t.Errorf("status of a canceled job: want exit 3, got\n%s", r)
	}
}

func TestMissingKeyExits2AndSaysHowToGetOne(t *testing.T) {
	t.Parallel()
	env := append(cleanEnv(), "RENDERFARM_SERVER=http://127.0.0.1:9")
	for _, args := range [][]string{
		{"submit", scene("cube.blend")},
		{"jobs"},
		{"status", "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10"},
	} {
		r := renderfarm(t, env, args...)
		if r.code != 2 {
			t.Errorf("%v without a key: want exit 2, got\n%s", args, r)
		}
		for _, want := range []string{"--api-key", "RENDERFARM_API_KEY", "renderfarm keys create --workspace NAME"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v without a key does not mention %q:\n%s", args, want, r)
			}
		}
	}
}

func TestInputMistakesExit2AndNameTheProblem(t *testing.T) {
	t.Parallel()
	env := append(cleanEnv(), "RENDERFARM_SERVER=http://127.0.0.1:9", "RENDERFARM_API_KEY=RF-unused")
	missing := filepath.Join(t.TempDir(), "shot010.blend")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a file that is not there", []string{"submit", missing}, "no such file or folder: " + missing},
		{"a file that is not a scene", []string{"submit", "cli_test.go"}, "must end in .blend or .zip"},
		{"a folder without a .blend", []string{"submit", "."}, "no .blend at its top level"},
		{"a frame range backwards", []string{"submit", scene("cube.blend"), "--frames", "5-1"}, `write it as "1-5"`},
		{"an empty frame range", []string{"submit", scene("cube.blend"), "--frames", "1,,3"}, "empty range"},
		{"a resolution without height", []string{"submit", scene("cube.blend"), "--resolution", "1920"}, "WIDTHxHEIGHT"},
		{"an unknown flag", []string{"submit", scene("cube.blend"), "--sample", "4"}, "flag provided but not defined: -sample"},
		{"two files", []string{"submit", scene("cube.blend"), scene("eevee.blend")}, "give one FILE"},
		{"an unknown status", []string{"jobs", "--status", "done"}, `"done" is not a job status`},
		{"download without a folder", []string{"download", "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10"}, "give the JOB id and the DIR"},
		{"a server that is not a URL", []string{"jobs", "--server", "farm:8080"}, "is not a URL"},
		{"retry without frames", []string{"retry", "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10"}, "say which frames: --failed, or --frames"},
		{"retry with both", []string{"retry", "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10", "--failed", "--frames", "2"}, "--failed or --frames, not both"},
		{"scout twice", []string{"submit", scene("cube.blend"), "--scout", "--scout-frames", "1"}, "--scout or --scout-frames, not both"},
		{"a split mode without --split", []string{"submit", scene("cube.blend"), "--split-mode", "tiles"}, "--split-mode goes with --split N"},
		{"suspend without a job", []string{"suspend"}, "give one JOB id"},
		{"enable without a name", []string{"workers", "enable"}, "give one worker NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderfarm(t, env, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("want exit 2 saying %q, got\n%s", tt.want, r)
			}
		})
	}
}

func TestUnreachableServerIsNamed(t *testing.T) {
	t.Parallel()
	// Port 9 (discard) has no listener on a test machine: the connection
	// is refused at once.
	env := append(cleanEnv(), "RENDERFARM_SERVER=http://127.0.0.1:9", "RENDERFARM_API_KEY=RF-unused")
	r := renderfarm(t, env, "jobs")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the farm at http://127.0.0.1:9") {
		t.Errorf("want exit 1 naming the URL, got\n%s", r)
	}
}

// TestUnreachableBucketIsNamed: the farm answers, but the upload URL it
// hands out points at its file store, which this machine cannot reach.
// The message names that host, not the farm: --server is right. (The farm
// here is a stand-in that answers POST /uploads as serve does with a
// bucket; the bucket's host is a port nothing listens on.)
func TestUnreachableBucketIsNamed(t *testing.T) {
	t.Parallel()
	bucket := closedAddr(t)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != client.APIPath+"/uploads" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"uploadUrl": "http://%s/farm/uploads/s1/project.zip?X-Amz-Signature=abc", "slug": "s1", "expiresAt": "2030-01-01T00:00:00Z"}`, bucket)
	}))
	defer api.Close()
	project := filepath.Join(t.TempDir(), "project.zip")
	if err := os.WriteFile(project, []byte("PK\x05\x06"+strings.Repeat("\x00", 18)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(), "RENDERFARM_SERVER="+api.URL, "RENDERFARM_API_KEY=RF-unused")
	r := renderfarm(t, env, "submit", project)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach "+bucket+", where the farm at "+api.URL+" keeps its files") || strings.Contains(r.stderr, "Check --server") {
		t.Errorf("want exit 1 naming the bucket's host %s and not blaming --server, got\n%s", bucket, r)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func requirePNG(t *testing.T, path string, width, height int) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	img, err := png.Decode(file)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), width, height)
	}
}

func requireZipOf(t *testing.T, path string, entries int) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer zr.Close()
	if len(zr.File) != entries {
		t.Errorf("%s has %d entries, want %d", path, len(zr.File), entries)
	}
}

func modTimes(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	times := map[string]time.Time{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		times[e.Name()] = info.ModTime()
	}
	return times
}

func TestWebhookCommands(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer receiver.Close()

	r := renderfarm(t, f.env(), "webhooks", "create", receiver.URL+"/hook", "--events", "onRenderComplete,onStatusChange", "--json")
	if r.code != 0 {
		t.Fatalf("webhooks create: want exit 0, got\n%s", r)
	}
	var hook client.Webhook
	if err := json.Unmarshal([]byte(r.stdout), &hook); err != nil || hook.ID == "" || hook.Secret == "" {
		t.Fatalf("webhooks create --json printed %q (%v), want the webhook with its secret", r.stdout, err)
	}
	if r := renderfarm(t, f.env(), "webhooks", "list"); r.code != 0 || !strings.Contains(r.stdout, hook.ID) || strings.Contains(r.stdout, hook.Secret) {
		t.Errorf("webhooks list: want the webhook without its secret, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "webhooks", "deliveries", hook.ID); r.code != 0 {
		t.Errorf("webhooks deliveries: want exit 0, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "webhooks", "create", "ftp://example.com/x"); r.code != 2 || !strings.Contains(r.stderr, "url") {
		t.Errorf("webhooks create with an ftp URL: want exit 2 naming the url, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "webhooks", "delete", hook.ID); r.code != 0 {
		t.Errorf("webhooks delete: want exit 0, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "webhooks", "delete", hook.ID); r.code != 2 {
		t.Errorf("deleting it again: want exit 2 (not found), got\n%s", r)
	}
}

// TestScoutSubmitResumeThenRetry: submit --scout --wait stops once the
// scout frames are rendered, saying how to go on; resume renders the
// rest; retry --frames renders one frame of the completed job again.
func TestScoutSubmitResumeThenRetry(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	r := renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1-5", "--scout", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "its scout frames are rendered") || !strings.Contains(r.stdout, "renderfarm resume ") {
		t.Fatalf("submit --scout --wait: want exit 0 saying the scouts are ready and how to resume, got\n%s", r)
	}
	id := jobID(t, r)
	c := client.New(f.url, f.key)
	p, err := c.Progress(t.Context(), id)
	if err != nil || p.Status != client.StatusSuspended || p.FramesCompleted != 3 {
		t.Fatalf("progress after the scouts = %+v, %v; want suspended with frames 1, 3 and 5 done", p, err)
	}
	if r := renderfarm(t, f.env(), "resume", id); r.code != 0 || !strings.Contains(r.stdout, "rendering") {
		t.Fatalf("resume: want exit 0 and rendering, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "status", id, "--wait"); r.code != 0 {
		t.Fatalf("status --wait: want exit 0, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "resume", id); r.code != 0 || !strings.Contains(r.stdout, "(already)") {
		t.Errorf("resume of a completed job: want a replay, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "retry", id, "--frames", "9"); r.code != 2 || !strings.Contains(r.stderr, "frameRanges") {
		t.Errorf("retry of a frame outside the job: want exit 2 naming frameRanges, got\n%s", r)
	}
	if r := renderfarm(t, f.env(), "retry", id, "--frames", "2"); r.code != 0 || !strings.Contains(r.stdout, "booting") {
		t.Fatalf("retry --frames 2: want exit 0 and booting, got\n%s", r)
	}
	done, err := c.Wait(t.Context(), id, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("the retried job ended %+v, %v; want completed", done, err)
	}
	p, err = c.Progress(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range p.Frames {
		if want := map[bool]int{true: 2, false: 1}[fr.Frame == 2]; fr.Attempts != want {
			t.Errorf("frame %d begun %d times, want %d", fr.Frame, fr.Attempts, want)
		}
	}
}

// TestSubmitSplitRendersAFrameInParts: submit --split 2 --split-mode
// tiles renders frame 1 in two parts, merged; --split 1 is refused by
// the farm, naming the field.
func TestSubmitSplitRendersAFrameInParts(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	if r := renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1", "--split", "1"); r.code != 2 || !strings.Contains(r.stderr, "splitFrame.parts") {
		t.Errorf("submit --split 1: want exit 2 naming splitFrame.parts, got\n%s", r)
	}
	r := renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1", "--split", "2", "--split-mode", "tiles", "--wait")
	if r.code != 0 {
		t.Fatalf("submit --split 2 --split-mode tiles --wait: want exit 0, got\n%s", r)
	}
	c := client.New(f.url, f.key)
	id := jobID(t, r)
	job, err := c.GetJob(t.Context(), id)
	if err != nil || job.FinalConfig == nil || job.FinalConfig.SplitFrame == nil || *job.FinalConfig.SplitFrame != (client.SplitFrame{Mode: client.SplitTiles, Parts: 2}) {
		t.Fatalf("job = %+v, %v; want finalConfig.splitFrame tiles, 2 parts", job, err)
	}
	p, err := c.Progress(t.Context(), id)
	if err != nil || len(p.Frames) != 1 || p.Frames[0].Status != client.FrameCompleted || p.Frames[0].Parts == nil || p.Frames[0].Parts.Completed != 2 {
		t.Errorf("progress = %+v, %v; want frame 1 completed of its 2 parts", p, err)
	}
}
