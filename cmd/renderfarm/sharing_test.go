package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// TestPriorityAndWorkspacesCommands: submit --priority sets a job's
// priority, `renderfarm priority` changes it (a value out of range exits
// 2 naming the field), and `renderfarm workspaces set` shares the farm,
// which `workspaces list` shows.
func TestPriorityAndWorkspacesCommands(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)

	r := renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1", "--priority", "80", "--json")
	if r.code != 0 {
		t.Fatalf("submit --priority 80: want exit 0, got\n%s", r)
	}
	var job client.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || job.Priority != 80 {
		t.Fatalf("submitted job's priority = %d (%v), want 80\n%s", job.Priority, err, r)
	}

	r = renderfarm(t, f.env(), "priority", job.ID, "20")
	if r.code != 0 || !strings.Contains(r.stdout, "priority 20") {
		t.Fatalf("priority JOB 20: want exit 0 saying priority 20, got\n%s", r)
	}
	if got, err := client.New(f.url, f.key).GetJob(t.Context(), job.ID); err != nil || got.Priority != 20 {
		t.Errorf("the job's priority = %+v, %v; want 20", got, err)
	}
	r = renderfarm(t, f.env(), "priority", job.ID, "101")
	if r.code != 2 || !strings.Contains(r.stderr, "priority") || !strings.Contains(r.stderr, "not 101") {
		t.Errorf("priority JOB 101: want exit 2 naming the field, got\n%s", r)
	}

	db := []string{"--data-dir", f.dataDir}
	r = renderfarm(t, cleanEnv(), append([]string{"workspaces", "set", "cli", "--weight", "3", "--max-running-chunks", "2", "--max-render-hours-per-month", "12.5"}, db...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "cli") {
		t.Fatalf("workspaces set: want exit 0 and the workspace shown, got\n%s", r)
	}
	r = renderfarm(t, cleanEnv(), append([]string{"workspaces", "list", "--json"}, db...)...)
	var rows []struct {
		Name             string `json:"name"`
		Weight           int    `json:"weight"`
		MaxRunningChunks int    `json:"maxRunningChunks"`
		// The month's budget, and what the month used so far.
		MaxRenderHours float64  `json:"maxRenderHoursPerMonth"`
		MonthHours     *float64 `json:"renderHoursThisMonth"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || r.code != 0 {
		t.Fatalf("workspaces list --json: %v\n%s", err, r)
	}
	found := false
	for _, w := range rows {
		if w.Name == "cli" {
			found = w.Weight == 3 && w.MaxRunningChunks == 2 && w.MaxRenderHours == 12.5 && w.MonthHours != nil && *w.MonthHours >= 0
		}
	}
	if !found {
		t.Errorf("workspaces list = %+v, want cli with weight 3, at most 2 running and a budget of 12.5 render hours a month", rows)
	}
	for _, bad := range []string{"-1", "NaN", "2e6"} {
		r = renderfarm(t, cleanEnv(), append([]string{"workspaces", "set", "cli", "--max-render-hours-per-month", bad}, db...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--max-render-hours-per-month must be 0 (no budget) to 1e+06 hours") {
			t.Errorf("workspaces set --max-render-hours-per-month %s: want exit 2 saying the range, got\n%s", bad, r)
		}
	}
	r = renderfarm(t, cleanEnv(), append([]string{"workspaces", "set", "nobody", "--weight", "2"}, db...)...)
	if r.code != 2 || !strings.Contains(r.stderr, `no workspace "nobody"`) {
		t.Errorf("workspaces set of an unknown workspace: want exit 2 naming it, got\n%s", r)
	}
	r = renderfarm(t, cleanEnv(), append([]string{"workspaces", "set", "cli", "--weight", "0"}, db...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "--weight must be from 1 to 1000") {
		t.Errorf("workspaces set --weight 0: want exit 2 naming the limit, got\n%s", r)
	}
	// Back to an even share for the other tests of the shared farm.
	renderfarm(t, cleanEnv(), append([]string{"workspaces", "set", "cli", "--weight", "1", "--max-running-chunks", "0", "--max-render-hours-per-month", "0"}, db...)...)
}
