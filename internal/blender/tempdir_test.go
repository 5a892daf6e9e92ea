package blender

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClaimTempDirRemovesWhatAKilledWorkerLeft starts a worker (this test
// binary again) that claims a run directory and makes a run in it, as
// Render does before starting Blender, then kills it with SIGKILL. While it
// lives, another runner's claim leaves its run alone; once it is dead, the
// next claim removes the run and nothing else.
func TestClaimTempDirRemovesWhatAKilledWorkerLeft(t *testing.T) {
	if dir := os.Getenv("RENDERFARM_TEMPDIR_TEST_WORKER"); dir != "" {
		r := &Runner{TempDir: filepath.Join(dir, "tmp")}
		if _, err := r.ClaimTempDir(); err != nil {
			t.Fatal(err)
		}
		run, _, err := r.runDir()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "run"), []byte(run), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	worker := exec.Command(os.Args[0], "-test.run=^TestClaimTempDirRemovesWhatAKilledWorkerLeft$")
	worker.Env = append(os.Environ(), "RENDERFARM_TEMPDIR_TEST_WORKER="+dir)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Process.Kill(); _ = worker.Wait() })
	var run string
	for deadline := time.Now().Add(time.Minute); run == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker made no run directory in a minute")
		}
		b, _ := os.ReadFile(filepath.Join(dir, "run"))
		run = string(b)
	}
	// Not a run: left alone whoever claims.
	other := filepath.Join(tmp, "notes")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}

	live := &Runner{TempDir: tmp}
	removed, err := live.ClaimTempDir()
	if err != nil || removed != 0 {
		t.Errorf("claim beside a live worker = %d, %v; want nothing removed", removed, err)
	}
	if _, err := os.Stat(run); err != nil {
		t.Errorf("the live worker's run directory: %v", err)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}

	_ = worker.Process.Kill()
	_ = worker.Wait()
	if _, err := os.Stat(run); err != nil {
		t.Fatalf("the killed worker's run directory should still be there: %v", err)
	}

	after := &Runner{TempDir: tmp}
	defer after.Close()
	removed, err = after.ClaimTempDir()
	if err != nil || removed != 1 {
		t.Errorf("claim after the worker died = %d, %v; want its 1 run removed", removed, err)
	}
	if _, err := os.Stat(run); !os.IsNotExist(err) {
		t.Errorf("the killed worker's run directory is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a directory that is not a run was removed: %v", err)
	}

	// Runs made after the claim are the claimer's: another runner of the
	// same process, or another process, leaves them.
	mine, _, err := after.runDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mine, tmp+string(filepath.Separator)+runDirPrefix) {
		t.Errorf("run directory %s is not in %s", mine, tmp)
	}
	next := &Runner{TempDir: tmp}
	defer next.Close()
	if removed, err := next.ClaimTempDir(); err != nil || removed != 0 {
		t.Errorf("second claim = %d, %v; want nothing removed", removed, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a live runner's run directory: %v", err)
	}
}

// TestClaimTempDirWithoutOne leaves the system's temporary directory alone.
func TestClaimTempDirWithoutOne(t *testing.T) {
	var r Runner
	if removed, err := r.ClaimTempDir(); err != nil || removed != 0 {
		t.Errorf("ClaimTempDir with no TempDir = %d, %v; want 0, nil", removed, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}
