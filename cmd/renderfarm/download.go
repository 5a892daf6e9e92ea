package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
)

const downloadUsage = `Usage: renderfarm download JOB DIR [flags]

Downloads a job's frames, and its frames zip and preview video once the
farm has made them, into DIR (made if missing); the images of the scene's
compositor File Output nodes go into DIR/compositeNodes/, a folder per
node, and their zip, compositeNodes.zip, into DIR. A file already in DIR with
the size the farm lists is skipped, so running the command again after an
interruption fetches only what is missing. Each file is written under a
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
	files, err := downloadPlan(d, dir)
	if err != nil {
		return nil, err
	}
	report := &fetchReport{JobID: id, Dir: dir, Files: []fetchedFile{}}
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
				fmt.Fprintf(con.stderr, "downloaded %s (%s)\n", name, formatBytes(n))
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
// node. A relative path that would leave its folder is refused.
func downloadPlan(d *client.Downloads, dir string) ([]plannedFile, error) {
	var plan []plannedFile
	taken := map[string]bool{}
	for i, f := range d.Files() {
		name := localName(f.FileName, i, taken)
		plan = append(plan, plannedFile{file: f, name: name, dest: filepath.Join(dir, name)})
	}
	for _, f := range d.CompositeNodeFiles() {
		rel := f.RelativePath
		if rel == "" {
			rel = f.FileName
		}
		dest, err := client.LocalPath(filepath.Join(dir, compositeNodesDir), rel)
		if err != nil {
			return nil, fmt.Errorf("the farm names a compositor image %q, which is not a path inside %s: %w", rel, compositeNodesDir, err)
		}
		name := path.Join(compositeNodesDir, filepath.ToSlash(rel))
		if taken[name] {
			continue
		}
		taken[name] = true
		plan = append(plan, plannedFile{file: f, name: name, dest: dest})
	}
	return plan, nil
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

// localName picks the name a file gets in the download folder. The
// server's name is reduced to its last element so that it cannot point
// outside the folder; names starting with a dot are replaced, since they
// would be hidden and could clash with the temporary files of
// DownloadFile. A name used twice gets its position in front.
func localName(remote string, i int, taken map[string]bool) string {
	name := path.Base(strings.ReplaceAll(remote, `\`, "/"))
	if name == "/" || strings.HasPrefix(name, ".") {
		name = fmt.Sprintf("file_%04d", i+1)
	}
	for taken[name] {
		name = fmt.Sprintf("%d_%s", i+1, name)
	}
	taken[name] = true
	return name
}
