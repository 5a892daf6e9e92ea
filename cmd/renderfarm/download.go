package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/farm"
)

const downloadUsage = `Usage: renderfarm download JOB DIR [flags]

Downloads a job's frames, and its frames zip and preview video once the
farm has made them, into DIR (made if missing); the images of the scene's
compositor File Output nodes go into DIR/compositeNodes/, a folder per
node, and their zip, compositeNodes.zip, into DIR. Files are named as the
farm names them; files the farm gives one name (letter case aside, as
macOS and Windows compare names) each get their frame number and view
added (x.frame7.left.png), and a warning says so. A file already in DIR
with the size the farm lists is skipped, so running the command again
after an interruption fetches only what is missing. Each file is written under a
temporary name and renamed into place once it is complete and its size
checked, so DIR never holds half a frame.

Flags:
`

func downloadJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("download", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print what was downloaded and skipped as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprint(stderr, downloadUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 2, 2, "give the JOB id and the DIR to download into")
	if err != nil {
		return err
	}
	id, dir := pos[0], pos[1]
	c, err := r.client()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return exitWith(exitUsage, "%v", err)
	}
	con := newConsole(stdout, stderr, *jsonOut)

	job, err := c.GetJob(ctx, id)
	if err != nil {
		return r.explain(err)
	}
	report, err := fetchOutputs(ctx, c, con, id, dir)
	if err != nil {
		if interrupted(ctx) {
			return exitWith(exitInterrupted, "interrupted; the files downloaded so far are complete, and the same command fetches the rest")
		}
		return r.explain(err)
	}
	switch {
	case job.Status == client.StatusCompleted:
	case job.Status.IsFinal():
		con.printf("job %s is %s: these are the frames it finished\n", id, job.Status)
	default:
		con.printf("job %s is %s: run the same command again once it has completed for the rest\n", id, job.Status)
	}
	return con.result(report)
}

// fetchReport is what a download did, as --json prints it.
type fetchReport struct {
	JobID string        `json:"jobId"`
	Dir   string        `json:"dir"`
	Files []fetchedFile `json:"files"`
	// Warnings say which files the farm gave one name, and how they were
	// saved.
	Warnings []string `json:"warnings,omitempty"`
}

type fetchedFile struct {
	FileName  string `json:"fileName"`
	Path      string `json:"path"`
	SizeBytes int64  `json:"sizeBytes"`
	// Skipped is set when the file was already there with the right size.
	Skipped bool `json:"skipped"`
}

// fetchOutputs mirrors a job's output files into dir, which must exist.
// It stops at the first file that fails: what it fetched before is
// complete, and a second run skips it.
func fetchOutputs(ctx context.Context, c *client.Client, con *console, id, dir string) (*fetchReport, error) {
	d, err := c.Downloads(ctx, id)
	if err != nil {
		return nil, err
	}
	files, warnings, err := downloadPlan(d, dir)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		con.warn("SAME_NAME", w)
	}
	report := &fetchReport{JobID: id, Dir: dir, Files: []fetchedFile{}, Warnings: warnings}
	step, done := con.countMeter(len(files), "downloading")
	defer done()

	var fetched, skipped int
	var fetchedBytes int64
	for _, planned := range files {
		f, name, dest := planned.file, planned.name, planned.dest
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return report, err
		}
		entry := fetchedFile{FileName: name, Path: dest, SizeBytes: f.SizeBytes}
		if alreadyThere(dest, f.SizeBytes) {
			entry.Skipped = true
			skipped++
		} else {
			n, err := c.DownloadFile(ctx, f.URL, dest)
			if err != nil {
				return report, err
			}
			// DownloadFile checked the body against Content-Length; this
			// checks it against what the farm recorded when it stored the
			// file, which a proxy or a truncated object cannot fake.
			if f.SizeBytes > 0 && n != f.SizeBytes {
				_ = os.Remove(dest)
				return report, fmt.Errorf("download %s: got %d bytes, the farm lists %d; the file was removed, run the download again", name, n, f.SizeBytes)
			}
			entry.SizeBytes = n
			fetched++
			fetchedBytes += n
			if !con.live {
				fprintf(con.stderr, "downloaded %s (%s)\n", name, formatBytes(n))
			}
		}
		report.Files = append(report.Files, entry)
		step()
	}
	done()
	if len(files) == 0 {
		con.printf("job %s has no output to download yet\n", id)
		return report, nil
	}
	con.printf("%s: %d downloaded (%s), %d already there\n", dir, fetched, formatBytes(fetchedBytes), skipped)
	return report, nil
}

// plannedFile is a file to download, its name in the report and where it
// goes.
type plannedFile struct {
	file       client.FileOutput
	name, dest string
}

// compositeNodesDir is the folder below DIR of the File Output nodes'
// images.
const compositeNodesDir = "compositeNodes"

// downloadPlan lists where each of a job's files goes below dir: the
// frames, zips and video by their file name, the File Output nodes'
// images below compositeNodes/ by their relative path, a folder per
// node. A relative path that would leave its folder is refused. Names
// the farm gives twice are told apart by what the files are (placeFiles);
// warnings say so.
func downloadPlan(d *client.Downloads, dir string) (plan []plannedFile, warnings []string, err error) {
	files := d.Files()
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = localName(f.FileName)
	}
	// No file takes the name of the folder of the nodes' images.
	local, warned := placeFiles(files, names, map[string]bool{strings.ToLower(compositeNodesDir): true})
	warnings = append(warnings, warned...)
	for i, f := range files {
		if local[i] != "" {
			plan = append(plan, plannedFile{file: f, name: local[i], dest: filepath.Join(dir, local[i])})
		}
	}

	files = d.CompositeNodeFiles()
	names = make([]string, len(files))
	for i, f := range files {
		rel := f.RelativePath
		if rel == "" {
			rel = f.FileName
		}
		if _, err := client.LocalPath(compositeNodesDir, rel); err != nil {
			return nil, nil, fmt.Errorf("the farm names a compositor image %q, which is not a path inside %s: %w", rel, compositeNodesDir, err)
		}
		parts := strings.Split(strings.ReplaceAll(rel, `\`, "/"), "/")
		for k, part := range parts {
			parts[k] = farm.SafeComponent(part)
		}
		names[i] = strings.Join(parts, "/")
	}
	local, warned = placeFiles(files, names, nil)
	warnings = append(warnings, warned...)
	for i, f := range files {
		if local[i] != "" {
			name := path.Join(compositeNodesDir, local[i])
			plan = append(plan, plannedFile{file: f, name: name, dest: filepath.Join(dir, filepath.FromSlash(name))})
		}
	}
	return plan, warnings, nil
}

// placeFiles names files that go in one folder, below it, given the
// names the farm gave them (names): a name no other file has, in any
// case, and that is none of reserved (lower-cased), is the file's. Files that
// share a name, which a farm whose names were not unique gives, are each
// saved under that name with what the file is added before its
// extension: its frame and view ("x.frame7.left.png"), or for a file of
// no frame, and where frame and view do not tell the files apart (nodes'
// images whose folders differ only in case), the URL's path, the object
// it is, as a short hash ("x.frame7.file3fa2c61b.png"). The name a file
// gets so depends on the file and the names the job has at the time,
// never on where the file is in the list, so that a download run again
// never takes a file it finds there for another one. A file still
// sharing its name (listed twice) is left out ("" in local), and a
// warning says so.
func placeFiles(files []client.FileOutput, names []string, reserved map[string]bool) (local, warnings []string) {
	groups := map[string][]int{}
	var order []string
	for i, name := range names {
		key := strings.ToLower(name)
		if groups[key] == nil {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
	}
	local = make([]string, len(files))
	taken := map[string]bool{}
	for key := range reserved {
		taken[key] = true
	}
	for _, key := range order {
		if members := groups[key]; len(members) == 1 && !reserved[key] {
			local[members[0]] = names[members[0]]
			taken[key] = true
		}
	}
	for _, key := range order {
		members := groups[key]
		if local[members[0]] != "" {
			continue
		}
		tags := make([]string, len(members))
		seen := map[string]bool{}
		distinct := true
		for k, i := range members {
			tags[k] = frameTag(files[i])
			if tags[k] == "" {
				tags[k] = objectTag(files[i])
			}
			distinct = distinct && !seen[strings.ToLower(tags[k])]
			seen[strings.ToLower(tags[k])] = true
		}
		var saved []string
		for k, i := range members {
			tag := tags[k]
			if !distinct && files[i].Frame != nil {
				tag += "." + objectTag(files[i])
			}
			named := withTag(names[i], tag)
			if taken[strings.ToLower(named)] {
				warnings = append(warnings, fmt.Sprintf("the farm lists %s twice under the name %s: it is downloaded once", what(files[i]), names[i]))
				continue
			}
			taken[strings.ToLower(named)] = true
			local[i] = named
			saved = append(saved, named)
		}
		warnings = append(warnings, fmt.Sprintf("the farm names %d files %s (letter case aside): they are saved as %s; a file %s from an earlier download may be any of them",
			len(members), names[members[0]], strings.Join(saved, ", "), names[members[0]]))
	}
	return local, warnings
}

// frameTag says which frame and view f shows ("frame7.left"); "" for a
// file of no frame.
func frameTag(f client.FileOutput) string {
	if f.Frame == nil {
		return ""
	}
	tag := "frame" + strconv.Itoa(*f.Frame)
	if f.View != nil {
		tag += "." + farm.SafeComponent(*f.View)
	}
	return tag
}

// objectTag says which object of the farm's f is: a hash of its URL
// without the query, where a presigned URL's signature and expiry are, so
// that it is the same in every listing.
func objectTag(f client.FileOutput) string {
	where := f.URL
	if u, err := url.Parse(f.URL); err == nil {
		where = u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	sum := sha256.Sum256([]byte(where))
	return "file" + hex.EncodeToString(sum[:4])
}

// what names f in a message.
func what(f client.FileOutput) string {
	switch {
	case f.Frame == nil:
		return "a file"
	case f.View != nil:
		return fmt.Sprintf("frame %d's image of view %q", *f.Frame, *f.View)
	}
	return fmt.Sprintf("frame %d's image", *f.Frame)
}

// withTag adds tag to the file name at the end of name, before its
// extension.
func withTag(name, tag string) string {
	dir, file := path.Split(name)
	ext := path.Ext(file)
	if ext == file {
		ext = ""
	}
	return dir + strings.TrimSuffix(file, ext) + "." + tag + ext
}

// alreadyThere reports whether path holds a file of the expected size. A
// file whose size the server does not give is fetched again: there would
// be no telling a complete one from a damaged one.
func alreadyThere(path string, size int64) bool {
	if size <= 0 {
		return false
	}
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Size() == size
}

// localName is the name a file the farm calls remote gets in the download
// folder: the server's name reduced to its last element, so that it
// cannot point outside the folder, and made a name the farm would make
// (farm.SafeComponent, which leaves the farm's own alone): no hidden name,
// which could also clash with DownloadFile's temporary files, and none
// Windows would not keep. A name that is nothing is "file".
func localName(remote string) string {
	name := path.Base(strings.ReplaceAll(remote, `\`, "/"))
	if name == "." || name == "/" || name == "" {
		return "file"
	}
	return farm.SafeComponent(name)
}
