package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// TestATaggedJobRendersOnlyOnTheTaggedNode: the distributed shape, with an
// untagged node and a node started with --tags gpu --gpu CUDA:1. A job
// that requires the tag "gpu" is rendered, by the real Blender, on the
// tagged node alone, though the other has free slots; a render that no
// registered node could take (tags or memory none has) is refused with
// 400 naming the field.
func TestATaggedJobRendersOnlyOnTheTaggedNode(t *testing.T) {
	d := newDistributed(t)
	api := d.api(t, "--workers", "0", "--worker-timeout", "5s")
	node := func(name string, args ...string) {
		worker(t, append([]string{"--worker-name", name, "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", "5s", "--concurrency", "2"}, args...)...)
	}
	node("node-plain")
	node("node-gpu", "--tags", "gpu", "--gpu", "CUDA:1")
	c := api.client("studio")
	ctx := testContext(t)

	// renderfarm workers shows what each node offers.
	out, err := exec.Command(binary(t), "workers", "--json", "--database", d.database).Output()
	if err != nil {
		t.Fatalf("renderfarm workers: %v", err)
	}
	var workers []struct {
		Name      string   `json:"name"`
		Slots     int      `json:"slots"`
		Tags      []string `json:"tags"`
		GPUs      []string `json:"gpus"`
		MemoryGiB int      `json:"memoryGiB"`
	}
	if err := json.Unmarshal(out, &workers); err != nil {
		t.Fatalf("renderfarm workers --json: %v\n%s", err, out)
	}
	offers := map[string]string{}
	for _, w := range workers {
		offers[w.Name] = fmt.Sprintf("%d slots, tags %v, GPUs %v, memory > 0: %v", w.Slots, w.Tags, w.GPUs, w.MemoryGiB > 0)
	}
	if want := "2 slots, tags [gpu], GPUs [CUDA:1], memory > 0: true"; offers["node-gpu"] != want {
		t.Errorf("renderfarm workers shows node-gpu as %q, want %q", offers["node-gpu"], want)
	}
	if want := "2 slots, tags [], GPUs [], memory > 0: true"; offers["node-plain"] != want {
		t.Errorf("renderfarm workers shows node-plain as %q, want %q", offers["node-plain"], want)
	}

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	for _, tc := range []struct {
		field  string
		change func(*client.RenderConfig)
	}{
		{"requestedRenderConfig.requiredTags", func(cfg *client.RenderConfig) { cfg.RequiredTags = []string{"fast"} }},
		{"requestedRenderConfig.minimumRam", func(cfg *client.RenderConfig) { cfg.MinimumRAM = client.Int(1 << 14) }},
	} {
		cfg := client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-4"}}
		tc.change(&cfg)
		_, _, err := c.Render(ctx, job.ID, cfg)
		var apiErr *client.APIError
		if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Field != tc.field {
			t.Errorf("a render no node could take (%s) = %v; want 400 naming the field", tc.field, err)
		}
	}

	cfg := client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-4"}, ChunkSize: client.Int(1),
		RequiredTags: []string{"gpu"}}
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.StatusCompleted || len(done.FinalConfig.RequiredTags) != 1 {
		t.Fatalf("job ended %s with requiredTags %v: %+v", done.Status, done.FinalConfig.RequiredTags, done.FailedReason)
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Frames {
		if f.Worker != "node-gpu" || f.Status != client.FrameCompleted {
			t.Errorf("frame %d: %s on %q; want completed on node-gpu", f.Frame, f.Status, f.Worker)
		}
	}
	if len(p.Frames) != 4 {
		t.Errorf("%d frames, want 4", len(p.Frames))
	}
}
