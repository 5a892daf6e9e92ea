package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// The images scripts/kube-node.sh imports into the node's containerd,
// which the pods run without pulling.
const (
	nodeImageTag = "kube-node"
	nodeImageAPI = "renderfarm-api"
	nodeImageWkr = "renderfarm-worker"
)

// kubeNode is the API server of RENDERFARM_TEST_KUBECONFIG with a node
// that runs pods, as scripts/kube-node.sh starts them, and the address at
// which those pods reach this machine (RENDERFARM_TEST_KUBE_NODE): there
// the test's PostgreSQL and S3 answer on their ports. It skips without
// them: they need root and change the host's network, so CI never has
// them.
func kubeNode(t *testing.T) (*kubeAPI, string) {
	t.Helper()
	addr := os.Getenv("RENDERFARM_TEST_KUBE_NODE")
	if addr == "" || os.Getenv("RENDERFARM_TEST_KUBECONFIG") == "" {
		t.Skip("RENDERFARM_TEST_KUBE_NODE and RENDERFARM_TEST_KUBECONFIG are not set: as root, with scripts/services.sh's PostgreSQL and S3 running, start a node with scripts/kube-node.sh start and set the variables it prints")
	}
	if net.ParseIP(addr) == nil {
		t.Fatalf("RENDERFARM_TEST_KUBE_NODE=%q: want the IP address at which the node's pods reach this machine (scripts/kube-node.sh prints it)", addr)
	}
	return apiServer(t), addr
}

// kubectl runs kubectl against the API server and answers its standard
// output. It prefers the kubectl of the server's release that
// scripts/kube-node.sh builds beside the kubeconfig.
func (k *kubeAPI) kubectl(ctx context.Context, args ...string) (string, error) {
	path := filepath.Join(filepath.Dir(k.path), "bin", "kubectl")
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath("kubectl"); err != nil {
			return "", errors.New("no kubectl: scripts/kube-node.sh build makes one")
		}
	}
	cmd := exec.CommandContext(ctx, path, append([]string{"--kubeconfig", k.path}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// pod is what the test reads of a pod.
type pod struct {
	Metadata struct {
		Name              string  `json:"name"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			RestartCount int `json:"restartCount"`
			State        map[string]struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p pod) ready() bool {
	return p.Metadata.DeletionTimestamp == nil && slices.ContainsFunc(p.Status.Conditions, func(c struct {
		Type   string `json:"type"`
		Status string `json:"status"`
	}) bool {
		return c.Type == "Ready" && c.Status == "True"
	})
}

// podsOf lists the pods of one part of the release (serve or worker).
func (k *kubeAPI) podsOf(t *testing.T, namespace, component string) []pod {
	t.Helper()
	var list struct {
		Items []pod `json:"items"`
	}
	k.do(t, http.MethodGet, "/api/v1/namespaces/"+namespace+"/pods?labelSelector=app.kubernetes.io/component%3D"+component, nil, &list)
	return list.Items
}

// readyPods waits until n pods of component are Ready and no other is
// left, and answers them; if they are not within timeout it fails,
// showing the pods' states and the end of their logs.
func (k *kubeAPI) readyPods(t *testing.T, namespace, component string, n int, timeout time.Duration) []pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pods := k.podsOf(t, namespace, component)
		if len(pods) == n && !slices.ContainsFunc(pods, func(p pod) bool { return !p.ready() }) {
			return pods
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range pods {
				fmt.Fprintf(&b, "%s: %s, ready %v, %+v\n", p.Metadata.Name, p.Status.Phase, p.ready(), p.Status.ContainerStatuses)
			}
			logs, err := k.kubectl(t.Context(), "-n", namespace, "logs", "-l", "app.kubernetes.io/component="+component, "--tail=5", "--prefix")
			t.Fatalf("%d %s pods Ready within %v, want %d:\n%s%s%v", len(pods), component, timeout, n, b.String(), logs, err)
		}
		time.Sleep(time.Second)
	}
}

// deleteNamespace removes namespace and waits until it is gone, its pods
// stopped, so that the next release finds the node's CPUs free.
func (k *kubeAPI) deleteNamespace(t *testing.T, namespace string) {
	req, _ := http.NewRequest(http.MethodDelete, k.server+"/api/v1/namespaces/"+namespace, nil)
	req.Header.Set("Authorization", "Bearer "+k.token)
	resp, err := k.http.Do(req)
	if err != nil {
		t.Errorf("delete namespace %s: %v", namespace, err)
		return
	}
	resp.Body.Close()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		req, _ := http.NewRequest(http.MethodGet, k.server+"/api/v1/namespaces/"+namespace, nil)
		req.Header.Set("Authorization", "Bearer "+k.token)
		resp, err := k.http.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return
		}
	}
	t.Errorf("namespace %s still there 3 minutes after its deletion", namespace)
}

// onNode answers rawURL with its host replaced by addr, its port kept:
// the address of the same server for the node's pods.
func onNode(t *testing.T, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort(addr, u.Port())
	return u.String()
}

// TestChartOnANode installs the chart on a node that runs its pods
// (scripts/kube-node.sh), with the farm's images, this machine's
// PostgreSQL and S3, and each of the sandboxes userns (the default),
// privileged and none, and checks what the API-server test cannot: that the API
// replicas become Ready (their probes answer, the database is migrated),
// that the render node starts in its sandbox, is Ready and registers,
// that an API key made with `kubectl exec … renderfarm keys create`
// works, and that a frame of testdata/scenes/cube.blend submitted to a
// replica renders on the node. With the default sandbox, a render node
// pod deleted in the middle of a chunk hands the chunk back, and the job
// completes with each frame once (skipped with -short).
func TestChartOnANode(t *testing.T) {
	k, addr := kubeNode(t)
	helmPath := helm(t)
	if _, err := k.kubectl(t.Context(), "version", "--client"); err != nil {
		t.Fatal(err)
	}
	for _, sandbox := range []string{"userns", "privileged", "none"} {
		t.Run(sandbox, func(t *testing.T) {
			start := time.Now()
			dsn := testbackends.PostgresDatabase(t, "")
			bucket := testbackends.S3Bucket(t)
			ns := k.namespace(t, "rf-node-"+sandbox, "privileged")
			t.Cleanup(func() { k.deleteNamespace(t, ns) })
			for name, data := range map[string]map[string]string{
				"renderfarm-database": {"url": onNode(t, dsn, addr)},
				"renderfarm-bucket": {
					"access-key-id":     os.Getenv("AWS_ACCESS_KEY_ID"),
					"secret-access-key": os.Getenv("AWS_SECRET_ACCESS_KEY"),
				},
			} {
				k.do(t, http.MethodPost, "/api/v1/namespaces/"+ns+"/secrets", map[string]any{
					"apiVersion": "v1", "kind": "Secret", "metadata": map[string]string{"name": name}, "stringData": data,
				}, nil)
			}
			out, err := k.helmAt(t, helmPath, "install", "farm", chartDir, "--namespace", ns,
				"--set", "image.serve.repository="+nodeImageAPI, "--set", "image.serve.tag="+nodeImageTag,
				"--set", "image.worker.repository="+nodeImageWkr, "--set", "image.worker.tag="+nodeImageTag,
				"--set", "image.pullPolicy=Never",
				"--set", "bucket.name="+bucket.Name,
				"--set", "bucket.endpoint="+onNode(t, os.Getenv(testbackends.S3EndpointEnv), addr),
				"--set", "serve.publicURL=http://"+net.JoinHostPort(addr, "8080"),
				"--set", "worker.sandbox="+sandbox,
				// The chart asks 2 CPUs for a render node, which a node
				// of 2 CPUs running two API replicas cannot give.
				"--set", "worker.resources.requests.cpu=500m", "--set", "worker.resources.requests.memory=1Gi",
				"--set", "worker.resources.limits.memory=8Gi",
				"--set", "worker.workDirSizeLimit=5Gi", "--set", "worker.cacheBytes=1GiB")
			if err != nil {
				t.Fatalf("helm install: %v\n%s", err, out)
			}

			serve := k.readyPods(t, ns, "serve", 2, 3*time.Minute)
			worker := k.readyPods(t, ns, "worker", 1, 3*time.Minute)[0].Metadata.Name
			t.Logf("%s: 2 API replicas and render node %s Ready %v after the install", sandbox, worker, time.Since(start).Round(time.Second))
			logs, err := k.kubectl(t.Context(), "-n", ns, "logs", worker)
			if err != nil {
				t.Fatal(err)
			}
			want := `"sandbox":"bubblewrap (`
			if sandbox == "none" {
				want = `"sandbox":"unconfined`
			}
			if !strings.Contains(logs, want) {
				t.Errorf("the render node's log does not say %s:\n%s", want, logs)
			}
			// The node offers jobs its pod's memory limit, not the
			// machine's (which is more here).
			if node := waitRegistered(t, k, ns, worker); node.MemoryGiB != 8 {
				t.Errorf("the render node offers %d GiB; want its pod's limit, 8 GiB", node.MemoryGiB)
			}
			// The two API replicas started at once on an empty database:
			// one of them made the farm's first key and logged it, once.
			shown := 0
			for _, p := range serve {
				logs, err := k.kubectl(t.Context(), "-n", ns, "logs", p.Metadata.Name)
				if err != nil {
					t.Fatal(err)
				}
				shown += strings.Count(logs, "RF-")
			}
			if shown != 1 {
				t.Errorf("the API replicas' logs show %d API keys; want the first key once", shown)
			}

			key, err := k.kubectl(t.Context(), "-n", ns, "exec", "deploy/farm-renderfarm-serve", "--",
				"renderfarm", "keys", "create", "--workspace", "node-test")
			if err != nil {
				t.Fatal(err)
			}
			if key = strings.TrimSpace(key); key == "" {
				t.Fatal("renderfarm keys create printed no key")
			}
			// Straight to a replica, on its pod IP: there is no kube-proxy.
			c := client.New("http://"+net.JoinHostPort(serve[0].Status.PodIP, "8080"), key)

			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			s := time.Now()
			id := submitCube(ctx, t, c, client.RenderConfig{FrameRanges: []string{"1"}})
			if _, err := c.Wait(ctx, id, client.UntilStatus(client.StatusCompleted), nil); err != nil {
				t.Fatalf("the render: %v", err)
			}
			frames := downloadNodeFrames(ctx, t, c, id)
			if len(frames) != 1 {
				t.Fatalf("%d frames to download, want 1", len(frames))
			}
			checkCubeFrame(t, frames["frame_0001.png"], 64, 36)
			if p, err := c.Progress(ctx, id); err != nil || len(p.Frames) != 1 || p.Frames[0].Worker != worker {
				t.Errorf("progress %+v, %v: want frame 1 rendered by %s", p, err, worker)
			}
			t.Logf("%s: one frame of cube.blend rendered in %v", sandbox, time.Since(s).Round(time.Second))

			if sandbox == "userns" && !testing.Short() {
				handOff(t, k, ns, worker, c)
			}
		})
	}
}

// registeredNode is a render node as `renderfarm workers --json` lists it.
type registeredNode struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	MemoryGiB int    `json:"memoryGiB"`
}

// waitRegistered waits until `renderfarm workers` in an API replica lists
// the render node of pod name as idle, and answers its row.
func waitRegistered(t *testing.T, k *kubeAPI, ns, name string) registeredNode {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		out, err = k.kubectl(t.Context(), "-n", ns, "exec", "deploy/farm-renderfarm-serve", "--", "renderfarm", "workers", "--json")
		if err != nil {
			continue
		}
		var rows []registeredNode
		if json.Unmarshal([]byte(out), &rows) != nil {
			continue
		}
		if i := slices.IndexFunc(rows, func(r registeredNode) bool { return r.Name == name && r.State == "idle" }); i >= 0 {
			return rows[i]
		}
	}
	t.Fatalf("render node %s not registered and idle within a minute: %s %v", name, out, err)
	return registeredNode{}
}

// submitCube uploads testdata/scenes/cube.blend, validates it and renders
// it with cfg, answering the job's ID.
func submitCube(ctx context.Context, t *testing.T, c *client.Client, cfg client.RenderConfig) string {
	t.Helper()
	slug, err := c.UploadFile(ctx, filepath.Join("..", "testdata", "scenes", "cube.blend"), nil)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	if _, err := c.Validate(ctx, job.ID); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if _, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated), nil); err != nil {
		t.Fatalf("wait for validation: %v", err)
	}
	cfg.ColorManagementPreset = client.String("default")
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatalf("render: %v", err)
	}
	return job.ID
}

// downloadNodeFrames downloads a job's frames, answering each file's
// contents by name; a name twice fails the test.
func downloadNodeFrames(ctx context.Context, t *testing.T, c *client.Client, id string) map[string][]byte {
	t.Helper()
	d, err := c.Downloads(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	frames := map[string][]byte{}
	for _, out := range d.FrameOutputs {
		name := filepath.Base(out.FileName)
		if _, dup := frames[name]; dup {
			t.Errorf("frame %s offered twice", name)
		}
		path := filepath.Join(dir, name)
		if _, err := c.DownloadFile(ctx, out.URL, path); err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		if frames[name], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	return frames
}

// checkCubeFrame checks a frame of cube.blend is a PNG of w×h that shows
// the scene: the lit grey cube at the centre, much brighter than the
// world's dark grey at the corners (about 150 and 70 of 255), not an
// empty or uniform image.
func checkCubeFrame(t *testing.T, frame []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(frame))
	if err != nil {
		t.Fatalf("the frame is not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		t.Errorf("the frame is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	luma := func(x, y int) int {
		r, g, bl, a := img.At(x, y).RGBA()
		if a>>8 != 255 {
			t.Errorf("pixel (%d, %d) is not opaque: alpha %d", x, y, a>>8)
		}
		return int((r+g+bl)/3) >> 8
	}
	centre := luma((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2)
	corner := luma(b.Min.X, b.Min.Y)
	if corner < 20 || centre < corner+40 {
		t.Errorf("the frame's centre is %d of 255 bright and its corner %d: want the lit cube, at least 40 brighter than the grey world (20 or more)", centre, corner)
	}
}

// handOff deletes the render node's pod in the middle of a long chunk of
// two frames: the node stops taking work, lets Blender run for
// --shutdown-timeout (30 s), then stops it and hands back what of the
// chunk is not stored yet; the ReplicaSet's new pod renders that, and the
// job completes with each frame once.
func handOff(t *testing.T, k *kubeAPI, ns, worker string, c *client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	// About 75 s of rendering on 2 cores.
	id := submitCube(ctx, t, c, client.RenderConfig{FrameRanges: []string{"1-2"}, ChunkSize: client.Int(2),
		Resolution: []int{1920, 1080}, SampleCount: client.Int(512)})
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		p, err := c.ProgressCounts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.FramesRendering > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chunk is not rendering 2 minutes after the submission: %+v", p)
		}
	}
	time.Sleep(10 * time.Second)
	s := time.Now()
	k.do(t, http.MethodDelete, "/api/v1/namespaces/"+ns+"/pods/"+worker, nil, nil)
	for slices.ContainsFunc(k.podsOf(t, ns, "worker"), func(p pod) bool { return p.Metadata.Name == worker }) {
		if time.Since(s) > 2*time.Minute {
			t.Fatalf("render node pod %s still there 2 minutes after its deletion", worker)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("render node pod %s deleted 10 s into the chunk: gone %v later (grace period 60 s)", worker, time.Since(s).Round(time.Second))
	job, err := c.Wait(ctx, id, client.UntilStatus(client.StatusCompleted), nil)
	if err != nil {
		t.Fatalf("the job after the render node's pod was deleted: %v", err)
	}
	p, err := c.Progress(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	handedBack := false
	for _, f := range p.Frames {
		t.Logf("frame %d: %s on %s, %d attempts", f.Frame, f.Status, f.Worker, f.Attempts)
		handedBack = handedBack || f.Worker != worker && f.Attempts > 1
	}
	if !handedBack {
		t.Errorf("no frame was rendered again by another render node: the chunk was not handed back")
	}
	frames := downloadNodeFrames(ctx, t, c, id)
	if len(frames) != 2 || frames["frame_0001.png"] == nil || frames["frame_0002.png"] == nil {
		t.Fatalf("job %s: frames %v, want frame_0001.png and frame_0002.png once each", job.Status, slices.Sorted(maps.Keys(frames)))
	}
	checkCubeFrame(t, frames["frame_0002.png"], 1920, 1080)
	t.Logf("the job completed %v after the deletion", time.Since(s).Round(time.Second))
}
