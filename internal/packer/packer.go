// Package packer turns a .blend that uses files from elsewhere (linked
// libraries, textures by absolute path, image sequences, UDIM tiles, sounds,
// fonts, volumes, caches) into one project zip the farm renders. Blender
// itself knows which files a .blend uses, so the work is done by the
// add-on's packer script (addon/renderfarm/packer.py), run in the artist's
// own Blender; the add-on runs the same script, so both pack alike.
//
// The packer only reads the artist's files: paths are rewritten in copies
// Blender saves into a temporary folder. The .blend and its libraries are
// opened with their scripts off, and nothing of them reaches Blender's
// command line (see blender.Runner.RunScript). What the script reports is
// information for the person packing; the zip it writes is checked with the
// farm's own project rules before it is handed over.
package packer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/addon"
	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/blendfile"
)

// maxReportBytes bounds the report read back from Blender: 10,000 files
// with long paths stay under 10 MiB.
const maxReportBytes = 16 << 20

// progressPrefix starts the lines of the packer script that say what it is
// doing ("reading shot.blend", "zipping 12 files, 3.1 MiB").
const progressPrefix = "renderfarm-pack: "

// Options are how to pack.
type Options struct {
	// Blender is the Blender executable; "" is "blender" from PATH.
	Blender string
	// ProjectRoot is the folder whose files keep their layout in the zip;
	// "" is the .blend's own folder. Files outside it go under _outside/.
	ProjectRoot string
	// OnProgress, if set, sees what the packer is doing, a line at a time.
	OnProgress func(string)
	// OnLine, if set, sees every line Blender prints, for a verbose log.
	OnLine func(string)
}

// Report is what a pack found and did, as the packer script wrote it.
type Report struct {
	// BlenderVersion is the Blender that packed, such as "3.4.1".
	BlenderVersion string `json:"blenderVersion"`
	// Blend is the .blend to render, at the top of the zip.
	Blend string `json:"blend"`
	// ProjectRoot is the folder whose layout the zip keeps.
	ProjectRoot string `json:"projectRoot"`
	// Files are the zip's files, the .blend to render first.
	Files []File `json:"files"`
	// Blends are the .blend files opened: the one to render, then its
	// libraries, each with the number of its paths rewritten.
	Blends []Blend `json:"blends"`
	// Missing are the files the .blend files name that are not there;
	// they are not in the zip, and render as missing on the farm.
	Missing []Missing `json:"missing"`
	// Refused are files that exist but were not packed, and why.
	Refused []Missing `json:"refused"`
	// TotalBytes is the size of the files packed, before compression.
	TotalBytes int64 `json:"totalBytes"`
	// ZipBytes is the size of the zip written.
	ZipBytes int64 `json:"zipBytes"`
}

// File is one file of the zip.
type File struct {
	ZipPath string `json:"zipPath"`
	// Source is the artist's file it was read from.
	Source string `json:"source"`
	Bytes  int64  `json:"bytes"`
	// Type is blend, image, sound, movieclip, movie, font, volume, cache,
	// ies or script.
	Type string `json:"type"`
	// Rewritten is set for a .blend whose paths were rewritten: the zip
	// holds a copy saved by the packing Blender, not the artist's file.
	Rewritten bool `json:"rewritten"`
}

// Blend is one .blend the packer opened.
type Blend struct {
	ZipPath string `json:"zipPath"`
	Source  string `json:"source"`
	// FileVersion is the Blender the file was saved with, "major.minor".
	FileVersion string `json:"fileVersion"`
	// RewrittenPaths counts the paths rewritten in its copy; 0 means the
	// zip holds the file as it is.
	RewrittenPaths int `json:"rewrittenPaths"`
}

// Missing is a file a .blend names that is not packed.
type Missing struct {
	// Blend is the zip path of the .blend that names it.
	Blend string `json:"blend"`
	Type  string `json:"type"`
	// Name is the datablock's name, such as the image's.
	Name string `json:"name"`
	// Path is the path as stored in the .blend (for a refused file, the
	// file's absolute path).
	Path string `json:"path"`
	// Resolved is the absolute path looked for, when there is one.
	Resolved string `json:"resolved,omitempty"`
	Reason   string `json:"reason"`
}

// reportFile is the report as the script writes it: a report, or why the
// pack failed.
type reportFile struct {
	Report
	Error string `json:"error"`
}

// OutsideFiles are the files packed from outside the project folder, which
// a person should see before they leave the machine.
func (r *Report) OutsideFiles() []File {
	var out []File
	for _, f := range r.Files {
		if strings.HasPrefix(f.ZipPath, "_outside/") {
			out = append(out, f)
		}
	}
	return out
}

// OnlyTheBlend reports whether the zip holds nothing but the .blend as the
// artist saved it: uploading the .blend alone then gives the farm the same.
func (r *Report) OnlyTheBlend() bool {
	return len(r.Files) == 1 && !r.Files[0].Rewritten
}

// Warnings are what a person should know about a pack that worked: a
// .blend re-saved by a newer Blender than the one that made it opens only
// in that newer Blender, on the farm too.
func (r *Report) Warnings() []string {
	var out []string
	packer := majorMinor(r.BlenderVersion)
	for _, b := range r.Blends {
		if b.RewrittenPaths == 0 || packer == "" || !newer(packer, b.FileVersion) {
			continue
		}
		out = append(out, fmt.Sprintf("%s was saved with Blender %s; its paths were rewritten in a copy saved by Blender %s, which only Blender %s or newer opens: the farm needs Blender %s or newer, or pack with Blender %s (--blender)",
			b.ZipPath, b.FileVersion, r.BlenderVersion, packer, packer, b.FileVersion))
	}
	return out
}

// Error is a pack that could not be made as asked: the message says what
// to change. The .blend and the output are as they were.
type Error struct {
	Blend   string
	Message string
	// LogTail is Blender's last output, when Blender failed.
	LogTail []string
}

func (e *Error) Error() string {
	return "pack " + filepath.Base(e.Blend) + ": " + e.Message
}

// ErrNoBlender is returned (wrapped) when Blender cannot be started, such
// as when it is not installed: the caller can then go on without packing.
var ErrNoBlender = blender.ErrNotStarted

// Pack writes a project zip of blendPath and every file it uses to
// zipPath, and reports what it packed. Files that are missing are listed
// and left out; the rest is packed. zipPath is replaced only by a complete
// zip that passes the farm's project checks.
func Pack(ctx context.Context, blendPath, zipPath string, opt Options) (*Report, error) {
	blendPath, err := filepath.Abs(blendPath)
	if err != nil {
		return nil, err
	}
	if err := checkBlend(blendPath); err != nil {
		return nil, err
	}
	root := ""
	if opt.ProjectRoot != "" {
		if root, err = filepath.Abs(opt.ProjectRoot); err != nil {
			return nil, err
		}
		if info, err := os.Stat(root); err != nil || !info.IsDir() {
			return nil, &Error{Blend: blendPath, Message: fmt.Sprintf("the project folder %s is not a folder", opt.ProjectRoot)}
		}
	}
	zipPath, err = filepath.Abs(zipPath)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(filepath.Ext(zipPath), ".zip") {
		return nil, &Error{Blend: blendPath, Message: fmt.Sprintf("the output %s must end in .zip", zipPath)}
	}

	// Everything is made beside the output, so the finished zip is renamed
	// into place rather than copied; a Blender in a container that can see
	// the output's folder sees its run directory too.
	work, err := os.MkdirTemp(filepath.Dir(zipPath), ".renderfarm-pack-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	job := struct {
		Blend       string `json:"blend"`
		ProjectRoot string `json:"projectRoot"`
		Zip         string `json:"zip"`
		Report      string `json:"report"`
	}{blendPath, root, filepath.Join(work, "project.zip"), filepath.Join(work, "report.json")}

	runner := &blender.Runner{Binary: opt.Blender, TempDir: work}
	runErr := runner.RunScript(ctx, blender.Script{
		Name:  "packer.py",
		Body:  addon.PackerScript(),
		Input: job,
		OnLine: func(line string) {
			if opt.OnLine != nil {
				opt.OnLine(line)
			}
			if msg, ok := strings.CutPrefix(line, progressPrefix); ok && opt.OnProgress != nil {
				opt.OnProgress(msg)
			}
		},
	})
	if errors.Is(runErr, blender.ErrNotStarted) {
		return nil, runErr
	}
	if runErr != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep, readErr := readReport(job.Report)
	switch {
	case rep != nil && rep.Error != "":
		return nil, &Error{Blend: blendPath, Message: rep.Error}
	case runErr != nil:
		return nil, failure(ctx, runner, blendPath, runErr)
	case readErr != nil:
		return nil, &Error{Blend: blendPath, Message: "the packer wrote no usable report: " + readErr.Error()}
	}

	project, err := blendfile.CheckZip(job.Zip, blendfile.DefaultZipLimits())
	if err != nil {
		return nil, &Error{Blend: blendPath, Message: "the zip the packer wrote is not one the farm takes: " + err.Error()}
	}
	if project.Root != "" || project.BlendPath != rep.Blend {
		return nil, &Error{Blend: blendPath, Message: fmt.Sprintf("the zip the packer wrote has %s/%s to render, not %s", project.Root, project.BlendPath, rep.Blend)}
	}
	if err := os.Rename(job.Zip, zipPath); err != nil {
		return nil, err
	}
	if info, err := os.Stat(zipPath); err == nil {
		rep.ZipBytes = info.Size()
	}
	return &rep.Report, nil
}

// checkBlend refuses what is not a .blend before Blender starts.
func checkBlend(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return &Error{Blend: path, Message: "not a regular file"}
	}
	if !strings.EqualFold(filepath.Ext(path), ".blend") {
		return &Error{Blend: path, Message: "not a .blend file; give the .blend to render"}
	}
	if _, err := blendfile.ReadHeaderFile(path); err != nil {
		return &Error{Blend: path, Message: err.Error()}
	}
	return nil
}

// failure explains a Blender that failed without saying why in the report:
// most often a file saved by a newer Blender, which older ones crash on.
func failure(ctx context.Context, r *blender.Runner, blendPath string, err error) error {
	var scriptErr *blender.ScriptError
	if !errors.As(err, &scriptErr) {
		return err
	}
	msg := "Blender failed: " + scriptErr.Line
	if h, herr := blendfile.ReadHeaderFile(blendPath); herr == nil {
		if v, verr := r.Version(ctx); verr == nil && newer(h.VersionString(), majorMinor(v)) {
			msg = fmt.Sprintf("the file was saved with Blender %s, which Blender %s cannot read; pack it with Blender %s or newer (--blender PATH)", h.VersionString(), v, h.VersionString())
		}
	}
	return &Error{Blend: blendPath, Message: msg, LogTail: scriptErr.LogTail}
}

// readReport reads the report the script wrote into the run's own folder.
func readReport(path string) (*reportFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxReportBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxReportBytes {
		return nil, fmt.Errorf("the report is over %d bytes", maxReportBytes)
	}
	return parseReport(body)
}

// parseReport decodes a report, refusing one that does not describe a
// zip with its .blend first.
func parseReport(body []byte) (*reportFile, error) {
	var rep reportFile
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("decoding the report: %w", err)
	}
	if rep.Error != "" {
		return &rep, nil
	}
	if rep.Blend == "" || len(rep.Files) == 0 || rep.Files[0].ZipPath != rep.Blend {
		return nil, errors.New("the report does not list the .blend to render first")
	}
	return &rep, nil
}
