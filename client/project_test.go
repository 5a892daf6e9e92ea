package client_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// writeFiles lays out a folder from a map of slash paths to contents.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// zipContents reads a zip back into a map of entry names to contents.
func zipContents(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[f.Name] = string(body)
	}
	return got
}

func TestZipFolderPutsTheProjectAtTheRootWithoutBackups(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"shot.blend":             "BLENDER-v304 scene",
		"shot.blend1":            "an older save",
		"shot.blend12":           "a much older save",
		"textures/wood.png":      "png bytes",
		"libs/props.blend":       "BLENDER-v304 library",
		"caches/smoke/0001.vdb":  "voxels",
		".git/config":            "[core]",
		".DS_Store":              "finder",
		"textures/.wood.png.swp": "editor",
	})

	var buf bytes.Buffer
	blend, err := client.ZipFolder(&buf, dir)
	if err != nil {
		t.Fatal(err)
	}
	if blend != "shot.blend" {
		t.Errorf("blend = %q, want shot.blend", blend)
	}
	want := map[string]string{
		"shot.blend":            "BLENDER-v304 scene",
		"textures/wood.png":     "png bytes",
		"libs/props.blend":      "BLENDER-v304 library",
		"caches/smoke/0001.vdb": "voxels",
	}
	got := zipContents(t, buf.Bytes())
	if len(got) != len(want) {
		t.Errorf("zip has %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for name, body := range want {
		if got[name] != body {
			t.Errorf("zip entry %s = %q, want %q", name, got[name], body)
		}
	}
}

func TestZipFolderFollowsLinksToFiles(t *testing.T) {
	dir, shared := t.TempDir(), t.TempDir()
	writeFiles(t, dir, map[string]string{"shot.blend": "BLENDER-v304"})
	writeFiles(t, shared, map[string]string{"hdri.exr": "light"})
	if err := os.Symlink(filepath.Join(shared, "hdri.exr"), filepath.Join(dir, "hdri.exr")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	var buf bytes.Buffer
	if _, err := client.ZipFolder(&buf, dir); err != nil {
		t.Fatal(err)
	}
	if got := zipContents(t, buf.Bytes())["hdri.exr"]; got != "light" {
		t.Errorf("hdri.exr in the zip = %q, want the linked file's contents", got)
	}
}

func TestZipFolderRefusesFoldersThatAreNotOneProject(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no .blend", map[string]string{"textures/wood.png": "png"}, "no .blend at its top level"},
		{"the .blend only in a subfolder", map[string]string{"scenes/shot.blend": "b"}, "no .blend at its top level"},
		{"only a backup", map[string]string{"shot.blend1": "b"}, "no .blend at its top level"},
		{"two .blend files", map[string]string{"a.blend": "b", "b.blend": "b"}, "2 .blend files at its top level (a.blend, b.blend)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			var buf bytes.Buffer
			_, err := client.ZipFolder(&buf, dir)
			var fe *client.FolderError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a *FolderError saying %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written for a folder that was refused", buf.Len())
			}
		})
	}
}

func TestZipFolderOfAFileOrNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "shot.blend")
	writeFiles(t, filepath.Dir(file), map[string]string{"shot.blend": "b"})
	var fe *client.FolderError
	if _, err := client.ZipFolder(io.Discard, file); !errors.As(err, &fe) {
		t.Errorf("zip of a file: err = %v, want a *FolderError", err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if _, err := client.ZipFolder(io.Discard, missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("zip of nothing: err = %v, want not-exist naming the path", err)
	}
}

func TestUploadFolderSendsAZipNamedAfterTheFolder(t *testing.T) {
	f := newFakeServer(t)
	var (
		gotName, gotType string
		gotBody          []byte
	)
	f.handle("POST /uploads", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ FileName, FileType string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		gotName, gotType = in.FileName, in.FileType
		writeJSON(w, 200, `{"uploadUrl": "/objects/up?sig=s", "slug": "slug-9", "expiresAt": "2030-01-01T00:00:00Z"}`)
	})
	f.handleRaw("PUT /objects/up", func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
	})

	dir := filepath.Join(t.TempDir(), "shot010")
	writeFiles(t, dir, map[string]string{"shot010.blend": "BLENDER-v304", "textures/wood.png": "png"})
	var lastSent, lastTotal int64
	slug, err := f.client().UploadFolder(t.Context(), dir, func(sent, total int64) { lastSent, lastTotal = sent, total })
	if err != nil {
		t.Fatal(err)
	}
	if slug != "slug-9" || gotName != "shot010.zip" || gotType != client.FileTypeZip {
		t.Errorf("slug %q, upload of %q as %q; want slug-9, shot010.zip as zip", slug, gotName, gotType)
	}
	if got := zipContents(t, gotBody); got["shot010.blend"] != "BLENDER-v304" || got["textures/wood.png"] != "png" {
		t.Errorf("uploaded zip holds %v", got)
	}
	if lastSent != int64(len(gotBody)) || lastTotal != lastSent {
		t.Errorf("progress ended at %d of %d, want the whole zip of %d bytes", lastSent, lastTotal, len(gotBody))
	}
}

func TestUploadFolderReportsTheFolderNotTheServer(t *testing.T) {
	f := newFakeServer(t)
	_, err := f.client().UploadFolder(t.Context(), t.TempDir(), nil)
	var fe *client.FolderError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a *FolderError", err)
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("%d requests sent for a folder that cannot be a project", n)
	}
}
