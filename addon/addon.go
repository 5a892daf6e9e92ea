// Package addon holds renderfarm's Blender add-on, the Python package in
// addon/renderfarm, embedded in the binary: `renderfarm addon OUT.zip`
// writes it, the dashboard offers it for download, and `renderfarm pack`
// runs its packer (packer.py) in the artist's Blender, so the command line
// and the add-on pack a project with the same code.
package addon

import (
	"archive/zip"
	"embed"
	"io"
	"io/fs"
	"path"
	"time"
)

// The package's Python files, __init__.py included: a pattern that names
// files embeds those starting with "_" too.
//
//go:embed renderfarm/*.py
var files embed.FS

// Dir is the folder the add-on's files sit in, inside the zip: Blender
// installs a zipped add-on by that folder's name.
const Dir = "renderfarm"

// PackerScript is the packer Blender runs (see packer.py): it finds every
// file a .blend uses, through its libraries, and writes a project zip.
func PackerScript() []byte {
	body, err := files.ReadFile(Dir + "/packer.py")
	if err != nil {
		// The file is compiled in; failing to read it is a broken build.
		panic("addon: " + err.Error())
	}
	return body
}

// zipTime is the time stamped on every entry, so that the zip of one
// build is the same bytes each time it is written (and its ETag holds).
var zipTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteZip writes the add-on as Blender installs it (Edit > Preferences >
// Add-ons > Install…): a zip holding the folder renderfarm/ with its
// Python files.
func WriteZip(w io.Writer) error {
	zw := zip.NewWriter(w)
	entries, err := fs.ReadDir(files, Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		body, err := fs.ReadFile(files, path.Join(Dir, e.Name()))
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: path.Join(Dir, e.Name()), Method: zip.Deflate, Modified: zipTime}
		h.SetMode(0o644)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(body); err != nil {
			return err
		}
	}
	return zw.Close()
}
