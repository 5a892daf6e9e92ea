package farm_test

import (
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func TestNextWorkspaceGivesTheSlotToTheFewestRunningPerWeight(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		shares []farm.WorkspaceShare
		want   string // "" for none
	}{
		{name: "the workspace with nothing running before the one with a big job running",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 1, Weight: 1, WaitingSince: t0},
				{ID: "b", Running: 0, Weight: 1, WaitingSince: t0.Add(time.Minute)},
			}, want: "b"},
		{name: "weights 3 to 1: the heavier takes slots until it runs three times as many",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 2, Weight: 3, WaitingSince: t0},
				{ID: "b", Running: 1, Weight: 1, WaitingSince: t0},
			}, want: "a"},
		{name: "weights 3 to 1 at 3:1 exactly: a tie, the one waiting longest",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 3, Weight: 3, WaitingSince: t0.Add(time.Second)},
				{ID: "b", Running: 1, Weight: 1, WaitingSince: t0},
			}, want: "b"},
		{name: "a tie between the same waits goes to the lower id, as on every replica",
			shares: []farm.WorkspaceShare{
				{ID: "b", Running: 0, Weight: 1, WaitingSince: t0},
				{ID: "a", Running: 0, Weight: 1, WaitingSince: t0},
			}, want: "a"},
		{name: "a workspace at its quota is passed over",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 1, Weight: 1, MaxRunning: 1, WaitingSince: t0},
				{ID: "b", Running: 5, Weight: 1, WaitingSince: t0},
			}, want: "b"},
		{name: "every workspace at its quota: none",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 1, Weight: 1, MaxRunning: 1, WaitingSince: t0},
			}, want: ""},
		{name: "a workspace that spent its month's budget is passed over, however little it runs",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 0, Weight: 1, Budget: 3600, MonthSeconds: 3600, WaitingSince: t0},
				{ID: "b", Running: 5, Weight: 1, WaitingSince: t0},
			}, want: "b"},
		{name: "a workspace under its budget takes the slot as any other",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 0, Weight: 1, Budget: 3600, MonthSeconds: 3599.5, WaitingSince: t0},
				{ID: "b", Running: 5, Weight: 1, WaitingSince: t0},
			}, want: "a"},
		{name: "every workspace out of budget: none",
			shares: []farm.WorkspaceShare{
				{ID: "a", Running: 0, Weight: 1, Budget: 60, MonthSeconds: 75, WaitingSince: t0},
			}, want: ""},
		{name: "no workspace waits: none", shares: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if i := farm.NextWorkspace(tt.shares); i >= 0 {
				got = tt.shares[i].ID
			}
			if got != tt.want {
				t.Errorf("NextWorkspace = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWeightsShareSlotsInTheirProportion hands out 8 slots one by one, as
// freed slots are, to two workspaces with work for all of them: weights 3
// and 1 end with 6 and 2.
func TestWeightsShareSlotsInTheirProportion(t *testing.T) {
	shares := []farm.WorkspaceShare{{ID: "a", Weight: 3}, {ID: "b", Weight: 1}}
	for range 8 {
		i := farm.NextWorkspace(shares)
		shares[i].Running++
		shares[i].WaitingSince = shares[i].WaitingSince.Add(time.Second)
	}
	if shares[0].Running != 6 || shares[1].Running != 2 {
		t.Errorf("running = %d and %d, want 6 and 2", shares[0].Running, shares[1].Running)
	}
}

func TestWorkersMeetRequirements(t *testing.T) {
	gpuNode := farm.WorkerOffer{Name: "gpu", BlenderVersions: []string{"3.4.1"}, MemoryBytes: 32_050 << 20,
		GPUs: []farm.GPU{{Type: "CUDA", Count: 2}}, Tags: []string{"fast", "gpu"}}
	cpuNode := farm.WorkerOffer{Name: "cpu", BlenderVersions: []string{"3.4.1", "4.3.2"}, MemoryBytes: 8 << 30}
	tests := []struct {
		name     string
		need     farm.Requirements
		gpu, cpu bool
	}{
		{"nothing: any worker", farm.Requirements{}, true, true},
		{"a Blender one of them runs", farm.Requirements{BlenderVersion: "4.3.2"}, false, true},
		{"a CUDA GPU", farm.Requirements{GPUType: "CUDA", GPUCount: 1}, true, false},
		{"two CUDA GPUs", farm.Requirements{GPUType: "CUDA", GPUCount: 2}, true, false},
		{"three CUDA GPUs", farm.Requirements{GPUType: "CUDA", GPUCount: 3}, false, false},
		{"a HIP GPU", farm.Requirements{GPUType: "HIP", GPUCount: 1}, false, false},
		{"32 GiB, which a 31.3 GiB machine is sold as", farm.Requirements{MinimumRAMGiB: 32}, true, false},
		{"8 GiB", farm.Requirements{MinimumRAMGiB: 8}, true, true},
		{"a tag", farm.Requirements{Tags: []string{"gpu"}}, true, false},
		{"a tag nobody has", farm.Requirements{Tags: []string{"gpu", "huge"}}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gpuNode.Meets(tt.need); got != tt.gpu {
				t.Errorf("the GPU worker meets %s: %v, want %v", tt.need, got, tt.gpu)
			}
			if got := cpuNode.Meets(tt.need); got != tt.cpu {
				t.Errorf("the CPU worker meets %s: %v, want %v", tt.need, got, tt.cpu)
			}
		})
	}
}

func TestRequirementsKeyAndWords(t *testing.T) {
	fc := &farm.FinalConfig{BlenderVersion: "4.3.2", ComputeDeviceType: "CUDA", GPUCount: 2, MinimumRAM: 16, RequiredTags: []string{"fast", "gpu"}}
	r := farm.RequirementsOf(fc)
	if got, want := r.Key(), "blender=4.3.2;gpu=CUDA:2;ram=16;tags=fast,gpu"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := r.String(), "Blender 4.3.2, 2 CUDA GPUs, 16 GiB of memory, the tags fast and gpu"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	cpu := farm.RequirementsOf(&farm.FinalConfig{BlenderVersion: "3.4.1", ComputeDeviceType: "CPU"})
	if got := cpu.Key(); got != "blender=3.4.1" {
		t.Errorf("Key of a CPU job = %q, want blender=3.4.1 (the form the migration gives chunks queued before)", got)
	}
	if got := (farm.Requirements{}).Key(); got != "" {
		t.Errorf("Key of nothing = %q, want empty", got)
	}
}

func TestParseGPUsAndTags(t *testing.T) {
	gpus, err := farm.ParseGPUs("cuda:2, OPTIX")
	if err != nil || farm.FormatGPUs(gpus) != "CUDA:2,OPTIX:1" {
		t.Errorf("ParseGPUs = %v, %v; want CUDA:2,OPTIX:1", gpus, err)
	}
	for _, bad := range []string{"TPU:1", "CUDA:0", "CUDA:65", "CUDA:x", "CUDA:1,CUDA:2"} {
		if g, err := farm.ParseGPUs(bad); err == nil {
			t.Errorf("ParseGPUs(%q) = %v, want an error", bad, g)
		}
	}
	tags, err := farm.ParseTags("gpu, fast,gpu")
	if err != nil || len(tags) != 2 || tags[0] != "fast" || tags[1] != "gpu" {
		t.Errorf("ParseTags = %v, %v; want [fast gpu]", tags, err)
	}
	for _, bad := range []string{"-x", "A", "a b", "a=b", "a;b"} {
		if tags, err := farm.ParseTags(bad); err == nil {
			t.Errorf("ParseTags(%q) = %v, want an error", bad, tags)
		}
	}
}
