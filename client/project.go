package client

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// blendBackup matches the backups Blender writes beside a file on every
// save (scene.blend1, scene.blend2, …). They are never rendered, and
// uploading them would double a project's size for nothing.
var blendBackup = regexp.MustCompile(`(?i)\.blend[0-9]+$`)

// storedExts are formats that are compressed already: deflating them again
// costs time and gains nothing.
var storedExts = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".webp": true, ".exr": true,
	".mp4": true, ".mov": true, ".mkv": true, ".webm": true, ".avi": true,
	".mp3": true, ".ogg": true, ".flac": true,
	".zip": true, ".gz": true, ".zst": true, ".7z": true, ".vdb": true,
}

// ZipFolder writes a project zip of the folder dir to w, laid out the way
// the farm expects one: the folder's contents at the root of the zip, so
// that the .blend is at the root and the paths it stores relative to
// itself ("//textures/wood.png") still point at the right files once the
// farm extracts it.
//
// The folder must hold exactly one .blend at its top level; more .blend
// files in subfolders (linked libraries) are fine. Blender's backups
// (.blend1, .blend2, …) and hidden files and folders (names starting with
// a dot, such as .git) are left out. A link to a file is followed and
// stored as that file; a link to a folder is an error, because following
// it could pull in far more than the project.
//
// It returns the name of the .blend. A folder that breaks these rules is
// a [*FolderError], and then nothing has been written to w.
func ZipFolder(w io.Writer, dir string) (blend string, err error) {
	files, blend, err := projectFiles(dir)
	if err != nil {
		return "", err
	}
	zw := zip.NewWriter(w)
	for _, rel := range files {
		if err := addToZip(zw, dir, rel); err != nil {
			return "", fmt.Errorf("zip %s: %w", dir, err)
		}
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("zip %s: %w", dir, err)
	}
	return blend, nil
}

// projectFiles lists the files of a project folder to zip, as slash
// paths relative to dir, and checks there is exactly one .blend at the top.
func projectFiles(dir string) (files []string, blend string, err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, "", err // the *PathError names the folder
	}
	if !info.IsDir() {
		return nil, "", &FolderError{Dir: dir, Problem: "not a folder"}
	}
	// WalkDir does not follow a link even at its root, and a project
	// folder reached through a link is still the project.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, "", err
	}

	var blends []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if blendBackup.MatchString(name) {
			return nil
		}
		mode := d.Type()
		if mode&fs.ModeSymlink != 0 {
			target, err := os.Stat(path)
			if err != nil {
				return &FolderError{Dir: dir, Problem: fmt.Sprintf("%s is a broken link (%v)", path, err)}
			}
			mode = target.Mode().Type()
			if target.IsDir() {
				return &FolderError{Dir: dir, Problem: path + " is a link to a folder, which is not followed; copy the folder into the project instead"}
			}
		}
		if !mode.IsRegular() {
			return &FolderError{Dir: dir, Problem: path + " is not a regular file; move it out of the project folder"}
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		files = append(files, rel)
		if !strings.Contains(rel, "/") && strings.EqualFold(filepath.Ext(rel), ".blend") {
			blends = append(blends, rel)
		}
		return nil
	})
	var folderErr *FolderError
	if errors.As(err, &folderErr) {
		return nil, "", err
	}
	if err != nil {
		return nil, "", fmt.Errorf("zip %s: %w", dir, err)
	}

	switch len(blends) {
	case 1:
		return files, blends[0], nil
	case 0:
		return nil, "", &FolderError{Dir: dir, Problem: "the folder has no .blend at its top level; the project's .blend must sit at the root of the folder"}
	default:
		slices.Sort(blends)
		return nil, "", &FolderError{Dir: dir, Problem: fmt.Sprintf("the folder has %d .blend files at its top level (%s); a project has exactly one, so move the others into a subfolder or out of the project", len(blends), strings.Join(blends, ", "))}
	}
}

func addToZip(zw *zip.Writer, dir, rel string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := zip.FileInfoHeader(info)
	if err != nil {
		return err
	}
	h.Name = rel
	h.Method = zip.Deflate
	if storedExts[strings.ToLower(filepath.Ext(rel))] {
		h.Method = zip.Store
	}
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// FolderError is the error of [ZipFolder] and [Client.UploadFolder] when a
// folder cannot be sent as a project the way it is, such as one without a
// .blend at its top level. Only the person who made the folder can fix
// it, so a program may report it apart from network or server errors.
type FolderError struct {
	Dir     string
	Problem string // what is wrong and what to do about it
}

// Error reads like "project folder shot010: the folder has no .blend at its top level; …".
func (e *FolderError) Error() string {
	return "project folder " + e.Dir + ": " + e.Problem
}

// UploadFolder zips the project folder dir with [ZipFolder] and uploads the
// zip, named after the folder ("shot010/" becomes "shot010.zip"). It returns
// the slug to pass to [Client.CreateJob]. The zip is written to a
// temporary file first, because a presigned PUT must announce its length
// before the body; the file is removed before UploadFolder returns.
// progress is as for [Client.Upload], and counts bytes of the zip.
func (c *Client) UploadFolder(ctx context.Context, dir string, progress func(sent, total int64)) (slug string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", dir, err)
	}
	name := filepath.Base(abs)
	if name == string(filepath.Separator) || name == "." {
		name = "project"
	}

	tmpDir, err := os.MkdirTemp("", "renderfarm-upload-")
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", dir, err)
	}
	defer os.RemoveAll(tmpDir)
	zipPath := filepath.Join(tmpDir, name+".zip")
	f, err := os.Create(zipPath)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", dir, err)
	}
	_, zipErr := ZipFolder(f, dir)
	closeErr := f.Close()
	if err := errors.Join(zipErr, closeErr); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}

	slug, err = c.UploadFile(ctx, zipPath, progress)
	if err != nil {
		// The temporary path means nothing to the caller; the folder does.
		return "", fmt.Errorf("upload %s: %w", dir, errors.Unwrap(err))
	}
	return slug, nil
}
