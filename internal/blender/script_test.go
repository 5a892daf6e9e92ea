package blender

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// echoScript writes what it was given back into the folder its input names:
// the arguments after "--" and the input itself.
const echoScript = `
import json, sys
args = sys.argv[sys.argv.index("--") + 1:]
with open(args[0], encoding="utf-8") as f:
    job = json.load(f)
if job.get("fail"):
    raise SystemExit("Error: " + job["fail"])
with open(job["out"], "w", encoding="utf-8") as f:
    json.dump({"args": args, "job": job}, f)
`

func TestRunScriptPassesItsInputAsAFileOfItsRun(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	out := t.TempDir()
	input := map[string]any{"out": filepath.Join(out, "echo.json"), "name": "-y --enable-autoexec"}
	var lines []string
	err := r.RunScript(context.Background(), Script{
		Name: "echo.py", Body: []byte(echoScript), Input: input,
		Paths:  sandbox.Paths{Writable: []string{out}},
		OnLine: func(l string) { lines = append(lines, l) },
	})
	if err != nil {
		t.Fatalf("RunScript: %v\n%s", err, strings.Join(lines, "\n"))
	}
	body, err := os.ReadFile(filepath.Join(out, "echo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Args []string       `json:"args"`
		Job  map[string]any `json:"job"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	// One argument, a file of the run; the values are inside it.
	if len(got.Args) != 1 || filepath.Base(got.Args[0]) != "input.json" || got.Job["name"] != input["name"] {
		t.Errorf("the script got %q and %v", got.Args, got.Job)
	}
	if _, err := os.Stat(filepath.Dir(got.Args[0])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run directory %s is left after the run: %v", filepath.Dir(got.Args[0]), err)
	}
}

func TestRunScriptFailure(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	err := r.RunScript(context.Background(), Script{Name: "echo.py", Body: []byte(echoScript), Input: map[string]any{"fail": "the script gave up"}})
	var serr *ScriptError
	if !errors.As(err, &serr) || serr.ExitCode == 0 || !strings.Contains(strings.Join(serr.LogTail, "\n"), "the script gave up") {
		t.Fatalf("RunScript = %#v, want a ScriptError with the script's message in its log", err)
	}
	err = (&Runner{Binary: filepath.Join(t.TempDir(), "no-blender")}).RunScript(context.Background(), Script{Name: "echo.py", Body: []byte(echoScript)})
	if !errors.Is(err, ErrNotStarted) {
		t.Errorf("RunScript without Blender = %v, want ErrNotStarted", err)
	}
	if err := r.RunScript(context.Background(), Script{Name: "../echo.py"}); err == nil {
		t.Error("RunScript took a script name with a folder in it")
	}
}
