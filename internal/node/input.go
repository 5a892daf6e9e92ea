package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// preparedInput is a job's input made ready for Blender on this machine.
type preparedInput struct {
	BlendPath string             `json:"blendPath"`
	SceneFile farm.SceneFile     `json:"sceneFile"`
	Header    blendfile.Header   `json:"header"`
	Project   *blendfile.Project `json:"project,omitempty"`
	// Source is the input file as it was when its checksum
	// (SceneFile.SHA256) was computed: a prepared input is reused only
	// while the file is still that one.
	Source fileIdentity `json:"source"`
}

// localPather is an object store whose objects are files on this machine,
// so inputs can be read in place instead of copied.
type localPather interface {
	Path(key string) (string, error)
}

// prepareInput makes a job's .blend available on this machine: the job's
// input file itself, or the project zip extracted after its checks. It
// checks the .blend header too, so a file that is not a .blend fails here
// with a clear message instead of in Blender. The result is kept beside the
// extracted files, so later chunks on the same machine reuse it.
//
// The input is the job's own copy of its upload (jobs/{id}/input/…), which
// no URL can write, and every preparation checks that it is still the file
// validation checked: a fresh preparation hashes it and compares the
// SHA-256 with the job's; a reused one first checks that the file is the
// very one it hashed (same file, size and modification time), and hashes
// it again if not. That holds on both stores: a local store's file is read
// in place, and a bucket's input is downloaded (or taken from the cache)
// into the work directory.
//
// A *blendfile.Error means the input itself is bad; any other error is a
// passing fault worth retrying.
func (n *Node) prepareInput(ctx context.Context, job *farm.Job) (*preparedInput, error) {
	lock, _ := n.inputs.LoadOrStore(job.ID, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()

	known := ""
	if job.SceneFile != nil {
		known = job.SceneFile.SHA256
	}
	dir := filepath.Join(n.jobDir(job.ID), "input")
	marker := filepath.Join(dir, "prepared.json")
	if in, ok := reusablePreparation(marker, known); ok {
		return in, nil
	}
	// Start clean: a previous attempt may have died half-way.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}

	up, err := n.store.GetUpload(ctx, job.WorkspaceID, job.Slug)
	if err != nil {
		return nil, fmt.Errorf("find upload of job %s: %w", job.ID, err)
	}
	dst := filepath.Join(dir, "source"+filepath.Ext(up.FileName))
	source, cached, err := n.fetchObject(ctx, up.JobInputKey(), dst, known)
	if err != nil {
		return nil, err
	}
	got, err := hashInput(source)
	if err != nil {
		return nil, err
	}
	if cached && got.sum != known {
		// The node's cached copy is no longer the file it kept (a disk's
		// fault, or a hand on the worker's files): it is dropped, and
		// the job's own copy downloaded again, or every job of that file
		// would fail on this node until the cache evicted it.
		n.log.Warn("a cached input no longer holds the file it kept; dropping it and downloading the job's own copy", "job", job.ID, "sha256", known, "found", got.sum)
		n.cache.drop(known, source)
		if err := os.Remove(source); err != nil {
			return nil, err
		}
		if source, err = n.download(ctx, up.JobInputKey(), dst); err != nil {
			return nil, err
		}
		cached = false // the download is cached below, once checked
		if got, err = hashInput(source); err != nil {
			return nil, err
		}
	}
	if known != "" && got.sum != known {
		// The stored input changed since validation: never render
		// something other than what was checked.
		return nil, fmt.Errorf("the input of job %s no longer matches its validated checksum", job.ID)
	}
	if after, err := identify(source); err != nil || after != got.identity {
		return nil, fmt.Errorf("the input of job %s changed while it was being checked", job.ID)
	}
	if _, local := n.objects.(localPather); !local && !cached {
		n.cache.add(got.sum, source)
	}
	in := &preparedInput{Source: got.identity, SceneFile: farm.SceneFile{FileName: up.FileName, FileType: up.FileType, SizeBytes: got.size, SHA256: got.sum}}
	var header blendfile.Header
	switch up.FileType {
	case farm.FileTypeZip:
		// The .blend's header is read from the zip first: a project whose
		// .blend is not one fails before anything is unpacked.
		if _, header, err = blendfile.ReadZipHeader(source, n.cfg.ZipLimits); err != nil {
			return nil, err
		}
		project, err := blendfile.ExtractZip(source, filepath.Join(dir, "project"), n.cfg.ZipLimits)
		if err != nil {
			return nil, err
		}
		in.Project = &project
		// The zip is unpacked as it is: the .blend sits under the project's
		// root folder, if the zip has one.
		in.BlendPath = filepath.Join(dir, "project", filepath.FromSlash(project.Root), filepath.FromSlash(project.BlendPath))
		in.SceneFile.BlendPath = project.BlendPath
		in.SceneFile.ProjectEntries = project.Entries
		in.SceneFile.ProjectBytes = project.TotalBytes
	default:
		in.BlendPath = source
		in.SceneFile.BlendPath = up.FileName
		if header, err = blendfile.ReadHeaderFile(in.BlendPath); err != nil {
			return nil, err
		}
	}
	in.Header = header
	in.SceneFile.Compression = header.Compression
	in.SceneFile.Version = header.VersionString()

	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(marker, b, 0o600); err != nil {
		return nil, err
	}
	return in, nil
}

// reusablePreparation returns the input prepared earlier on this machine
// if it is still good: prepared from the file whose checksum the job
// knows (any, before validation has recorded one), and that file is still
// the very one that was hashed, or, if it is not (its times changed, or
// a file was put in its place), it still holds the bytes that were:
// hashed again, it is reused, and the marker records it as it is now.
// Anything else is prepared again, which removes the job's input
// directory, under any chunk of the job that renders from it on this
// machine, so a file whose bytes are unchanged is not.
func reusablePreparation(marker, known string) (*preparedInput, bool) {
	b, err := os.ReadFile(marker)
	if err != nil {
		return nil, false
	}
	var in preparedInput
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, false
	}
	if in.Source.Path == "" || in.SceneFile.SHA256 == "" || (known != "" && in.SceneFile.SHA256 != known) {
		return nil, false
	}
	if _, err := os.Stat(in.BlendPath); err != nil {
		return nil, false
	}
	now, err := identify(in.Source.Path)
	if err != nil {
		return nil, false
	}
	if now != in.Source {
		if !holdsStill(now, in.SceneFile.SHA256) {
			return nil, false
		}
		in.Source = now
		b, err := json.Marshal(in)
		if err != nil || os.WriteFile(marker, b, 0o600) != nil {
			return nil, false
		}
	}
	return &in, true
}

// holdsStill reports whether the file id names hashes to sha256 and did
// not change while it was hashed.
func holdsStill(id fileIdentity, sha256 string) bool {
	_, sum, err := hashFile(id.Path)
	if err != nil || sum != sha256 {
		return false
	}
	after, err := identify(id.Path)
	return err == nil && after == id
}

// fileIdentity says which file a path held: a file replaced under the same
// name (a rename over it, as every object write is), or changed in place,
// has another identity.
type fileIdentity struct {
	Path    string `json:"path"`
	Device  uint64 `json:"device"`
	Inode   uint64 `json:"inode"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"modTime"` // nanoseconds since 1970
}

func identify(path string) (fileIdentity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileIdentity{}, err
	}
	id := fileIdentity{Path: path, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	id.Device, id.Inode = fileNumbers(fi)
	return id, nil
}

// hashedInput is an input file as it was when it was hashed.
type hashedInput struct {
	identity fileIdentity
	size     int64
	sum      string
}

// hashInput hashes the file at path, noting first which file it is.
func hashInput(path string) (hashedInput, error) {
	identity, err := identify(path)
	if err != nil {
		return hashedInput{}, err
	}
	size, sum, err := hashFile(path)
	if err != nil {
		return hashedInput{}, err
	}
	return hashedInput{identity, size, sum}, nil
}

// fetchObject returns a local path of an object: the object itself when
// the store is on this machine, the cached copy when its checksum is known
// and cached (cached is true then), else a copy downloaded to dst.
func (n *Node) fetchObject(ctx context.Context, key, dst, sha256 string) (path string, cached bool, err error) {
	if lp, ok := n.objects.(localPather); ok {
		path, err := lp.Path(key)
		return path, false, err
	}
	if n.cache.linkTo(sha256, dst) {
		return dst, true, nil
	}
	path, err = n.download(ctx, key, dst)
	return path, false, err
}

// download copies an object from the bucket to dst, a new file, and makes
// it read-only: the farm never writes an input once it has it.
func (n *Node) download(ctx context.Context, key, dst string) (string, error) {
	r, err := n.objects.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(0o400)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst) // a part of the object is no input
		return "", err
	}
	return dst, nil
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// isInputError reports whether err says the uploaded file itself is bad,
// which no retry can fix.
func isInputError(err error) (*blendfile.Error, bool) {
	var be *blendfile.Error
	ok := errors.As(err, &be)
	return be, ok
}

// forgetJobFiles removes what this machine kept for a finished job.
func (n *Node) forgetJobFiles(jobID string) {
	n.forgetSessions(jobID)
	n.inputs.Delete(jobID)
	if err := os.RemoveAll(n.jobDir(jobID)); err != nil {
		n.log.Warn("could not remove job work files", "job", jobID, "err", err)
	}
}

// forgetSessions ends this machine's idle warm Blender sessions of a job.
func (n *Node) forgetSessions(jobID string) {
	for _, in := range n.installs {
		in.Blender.Forget(n.jobDir(jobID))
	}
}

// tidyIfFinal removes this machine's files of a job that has ended (canceled
// or failed while a chunk ran here); a job still going keeps its input for
// the next chunk. A job whose last chunk has ended (finalizing) keeps its
// files for the finalizing but needs no warm Blender any more.
func (n *Node) tidyIfFinal(jobID string) {
	job, err := n.store.GetJob(context.Background(), "", jobID)
	switch {
	case err != nil:
	case job.Status.IsFinal():
		n.forgetJobFiles(jobID)
	case job.Status == farm.StatusFinalizing:
		n.forgetSessions(jobID)
	}
}

// workSweepInterval is how often a worker looks for work directories of
// jobs that ended while another worker held them.
const workSweepInterval = time.Minute

// sweepWorkDirs removes this machine's files of jobs that have ended. A
// job's files are removed by the worker that ends it; the other workers
// that rendered chunks of it find out here.
func (n *Node) sweepWorkDirs(ctx context.Context) {
	entries, err := os.ReadDir(n.cfg.WorkDir)
	if err != nil {
		return
	}
	for _, entry := range entries {
		if !entry.IsDir() || uuid.Validate(entry.Name()) != nil {
			continue // the input cache, or not ours
		}
		job, err := n.store.GetJob(ctx, "", entry.Name())
		if errors.Is(err, store.ErrNotFound) || (err == nil && job.Status.IsFinal()) {
			n.forgetJobFiles(entry.Name())
		}
	}
}
