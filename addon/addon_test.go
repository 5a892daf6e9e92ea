package addon

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestWriteZip(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteZip(&a); err != nil {
		t.Fatal(err)
	}
	if err := WriteZip(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two zips of one build differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	// Blender installs the folder; its __init__.py makes it an add-on.
	for _, want := range []string{"renderfarm/__init__.py", "renderfarm/packer.py", "renderfarm/renderfarm_client.py", "renderfarm/ui.py"} {
		if !slices.Contains(names, want) {
			t.Errorf("the zip holds %q, want %s among them", names, want)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, Dir+"/") || strings.Contains(n, "__pycache__") {
			t.Errorf("unexpected entry %s", n)
		}
	}
	if !bytes.Contains(PackerScript(), []byte("def pack(job, bpy)")) {
		t.Error("PackerScript is not packer.py")
	}
}

// TestPythonUnitTests runs the add-on's Python tests that need neither
// Blender nor a farm: the packer's layout decisions and the client's
// parsing (the e2e tests run the rest against a real farm).
func TestPythonUnitTests(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	cmd := exec.Command(python, "-m", "unittest", "discover", "-s", "tests", "-p", "test_*.py")
	// The package is imported from here; no bytecode is left in the tree.
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
