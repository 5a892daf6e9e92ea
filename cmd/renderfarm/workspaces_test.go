package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestWorkspacesCreateRenameAndStorageQuota: `workspaces create` makes a
// workspace, `rename` renames it, `set --max-storage-bytes` takes a size
// with a unit, and `list --json` shows the jobs, the storage used and
// the quota; a taken name or a bad size exits 2 saying what to fix.
func TestWorkspacesCreateRenameAndStorageQuota(t *testing.T) {
	t.Parallel()
	db := []string{"--data-dir", t.TempDir()}
	run := func(args ...string) result {
		t.Helper()
		return renderfarm(t, cleanEnv(), append(args, db...)...)
	}
	if r := run("workspaces", "create", "studio"); r.code != 0 || !strings.Contains(r.stdout, "studio") {
		t.Fatalf("workspaces create studio: want exit 0 showing it, got\n%s", r)
	}
	if r := run("workspaces", "create", "studio"); r.code != 2 || !strings.Contains(r.stderr, `workspace "studio" already`) {
		t.Errorf("a second workspaces create studio: want exit 2 saying it exists, got\n%s", r)
	}
	run("workspaces", "create", "other")
	if r := run("workspaces", "rename", "studio", "other"); r.code != 2 || !strings.Contains(r.stderr, "choose another name") {
		t.Errorf("rename to a taken name: want exit 2, got\n%s", r)
	}
	if r := run("workspaces", "rename", "studio", "Studio A"); r.code != 0 || !strings.Contains(r.stdout, "Studio A") {
		t.Fatalf("rename studio to Studio A: want exit 0 showing it, got\n%s", r)
	}
	if r := run("workspaces", "set", "Studio A", "--max-storage-bytes", "lots"); r.code != 2 || !strings.Contains(r.stderr, "not a size") {
		t.Errorf("--max-storage-bytes lots: want exit 2 saying it is not a size, got\n%s", r)
	}
	if r := run("workspaces", "set", "Studio A", "--max-storage-bytes", "2GiB"); r.code != 0 || !strings.Contains(r.stdout, "2.1 GB") {
		t.Fatalf("set --max-storage-bytes 2GiB: want exit 0 showing the quota, got\n%s", r)
	}
	r := run("workspaces", "list", "--json")
	var rows []struct {
		Name            string `json:"name"`
		Jobs            int    `json:"jobs"`
		StorageBytes    *int64 `json:"storageBytes"`
		MaxStorageBytes int64  `json:"maxStorageBytes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || r.code != 0 {
		t.Fatalf("workspaces list --json: %v\n%s", err, r)
	}
	if len(rows) != 2 || rows[0].Name != "Studio A" || rows[0].MaxStorageBytes != 2<<30 || rows[0].StorageBytes == nil || *rows[0].StorageBytes != 0 || rows[0].Jobs != 0 {
		t.Errorf("workspaces list = %+v, want Studio A with a quota of 2 GiB, nothing stored, and other", rows)
	}
	if r := run("workspaces", "set", "Studio A", "--max-storage-bytes", "0"); r.code != 0 {
		t.Errorf("set --max-storage-bytes 0 (no limit): want exit 0, got\n%s", r)
	}
}

// TestUsageSinceSaysWhatToFix: --since takes days or a duration, and
// refuses nonsense and a period longer than a report covers, saying so in
// its own words (not those of keys create --expires).
func TestUsageSinceSaysWhatToFix(t *testing.T) {
	t.Parallel()
	db := []string{"--data-dir", t.TempDir()}
	for _, tt := range []struct{ since, want string }{
		{"0d", `"0d" is not a period to look back over; write days as 30d`},
		{"ninety days", `is not a period to look back over`},
		{"400d", "--since goes back 400 days, further than a report covers; give at most 366d"},
	} {
		r := renderfarm(t, cleanEnv(), append([]string{"usage", "--since", tt.since}, db...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "--expires") {
			t.Errorf("usage --since %s: exit %d, stderr %q; want 2 saying %q", tt.since, r.code, r.stderr, tt.want)
		}
	}
	if r := renderfarm(t, cleanEnv(), append([]string{"usage", "--since", "7d"}, db...)...); r.code != 0 {
		t.Errorf("usage --since 7d: exit %d, stderr %q; want a report", r.code, r.stderr)
	}
}
