package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
)

func listJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("jobs", stderr)
	var r remote
	r.register(fs)
	status := fs.String("status", "", "only jobs with this status: "+statusNames())
	page := fs.Int("page", 1, "the page to show, from 1")
	pageSize := fs.Int("page-size", 20, "jobs per page, 1 to 100")
	jsonOut := fs.Bool("json", false, "print the page as JSON on stdout ({\"jobs\": [...], \"pagination\": {...}})")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm jobs [flags]\n\nLists the jobs of the API key's workspace, a page at a time.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0, 0, "jobs takes no arguments; filter with --status"); err != nil {
		return err
	}
	if *status != "" && !slices.Contains(client.Statuses(), client.Status(*status)) {
		return fmt.Errorf("%w: --status %q is not a job status; use one of %s", errUsage, *status, statusNames())
	}
	if *page < 1 || *pageSize < 1 || *pageSize > 100 {
		return fmt.Errorf("%w: --page must be 1 or more, --page-size 1 to 100", errUsage)
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)

	list, err := c.ListJobs(ctx, client.ListOptions{Page: *page, PageSize: *pageSize, Status: client.Status(*status)})
	if err != nil {
		return r.explain(err)
	}
	if con.json {
		if list.Jobs == nil {
			list.Jobs = []client.Job{}
		}
		return con.result(list)
	}
	if len(list.Jobs) == 0 {
		con.printf("no jobs\n")
		return nil
	}
	tw := tabwriter.NewWriter(con.text(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATUS\tCREATED\tFILE\tFRAMES")
	for _, j := range list.Jobs {
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.Status, j.CreatedAt.Local().Format("2006-01-02 15:04"), fileName(&j), frameSummary(&j))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	p := list.Pagination
	con.printf("page %d of %d, %d jobs\n", p.Page, max(p.TotalPages, 1), p.Total)
	if p.Page < p.TotalPages {
		con.printf("next page: renderfarm jobs --page %d\n", p.Page+1)
	}
	return nil
}

func showStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("status", stderr)
	var r remote
	r.register(fs)
	wait := fs.Bool("wait", false, "follow the job until it ends")
	jsonOut := fs.Bool("json", false, "print the job as JSON on stdout and nothing else there")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm status JOB [flags]\n\nShows a job. The exit code says how it stands: 0 completed or still going,\n1 failed, 3 canceled.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1, "give one JOB id")
	if err != nil {
		return err
	}
	id := pos[0]
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)

	job, err := c.GetJob(ctx, id)
	if err != nil {
		return r.explain(err)
	}
	if *wait && !job.Status.IsFinal() {
		if job, err = follow(ctx, c, con, &r, id, "renderfarm status "+id+" --wait"); err != nil {
			return err
		}
	}
	var progress *client.Progress
	if job.FinalConfig != nil {
		// Counters are a nicety here; a farm that cannot give them still
		// shows the job.
		progress, _ = c.ProgressCounts(ctx, id)
	}
	printJob(con, job, progress)
	if err := con.result(job); err != nil {
		return err
	}
	return outcome(job)
}

// printJob shows a job the way a person checks on it: what was sent, what
// is rendered, how far it got, and why it failed. Everything in it but
// the labels comes from the farm, and is escaped.
func printJob(con *console, j *client.Job, p *client.Progress) {
	con.printf("job %s: %s\n", j.ID, j.Status)
	row := func(label, format string, args ...any) {
		con.printf("  %-9s %s\n", label, verbatim(sprintf(format, args...)))
	}
	if f := j.SceneFile; f != nil {
		detail := formatBytes(f.SizeBytes)
		if f.Version != "" {
			detail += ", Blender " + f.Version
		}
		row("file", "%s (%s)", f.FileName, detail)
	}
	row("created", "%s", j.CreatedAt.Local().Format(time.DateTime))
	row("updated", "%s", j.UpdatedAt.Local().Format(time.DateTime))
	if fc := j.FinalConfig; fc != nil {
		res := ""
		if len(fc.Resolution) == 2 {
			res = fmt.Sprintf(", %dx%d", fc.Resolution[0], fc.Resolution[1])
		}
		blender := ""
		if fc.BlenderVersion != "" {
			blender = ", Blender " + fc.BlenderVersion
		}
		row("render", "frames %s (%d) of scene %s%s, %s, %d samples, %s%s",
			strings.Join(fc.FrameRanges, ","), fc.FrameCount, fc.Scene, res, fc.RenderEngine, fc.SampleCount, fc.OutputFormat, blender)
	}
	if p != nil && p.FramesTotal > 0 {
		row("progress", "%s", verbatim(progressCounts(p)))
	}
	if j.NormalizedSeconds > 0 {
		row("rendered", "%s of render time", formatSeconds(j.NormalizedSeconds))
	}
	if fr := j.FailedReason; fr != nil {
		row("failed", "%s (%s): %s", fr.Name, fr.Type, fr.Message)
	}
	if a := j.Analysis; a != nil {
		for _, w := range a.Warnings {
			con.warn(w.Code, w.Message)
		}
	}
	if j.Status == client.StatusCompleted {
		con.printf("download it with: renderfarm download %s DIR\n", j.ID)
	}
}

func showProgress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("progress", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the progress as JSON on stdout (an array when no JOB is given)")
	span := fs.String("frames", "", "with JOB, the frames to list, such as 1001-2000 or 7 (the counters still count every frame); every frame when not given")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm progress [JOB] [flags]\n\nShows the render progress of one job, or of every job the farm is working on.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 0, 1, "give one JOB id, or none for every running job")
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)

	if *span != "" && len(pos) == 0 {
		return fmt.Errorf("%w: --frames lists the frames of one job: give its JOB id", errUsage)
	}
	if len(pos) == 1 {
		read := c.Progress
		if *span != "" {
			first, last, err := parseFrameSpan(*span)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			read = func(ctx context.Context, id string) (*client.Progress, error) {
				return c.ProgressOfFrames(ctx, id, first, last)
			}
		}
		p, err := read(ctx, pos[0])
		if err != nil {
			return r.explain(err)
		}
		if con.json {
			return con.result(p)
		}
		con.printf("job %s: %s\n", p.JobID, progressLine(p))
		// The frames worth a look: those being rendered and where, and
		// those that failed.
		for _, f := range p.Frames {
			switch f.Status {
			case client.FrameRendering:
				con.printf("  frame %d rendering on %s (attempt %d)\n", f.Frame, f.Worker, max(f.Attempts, 1))
			case client.FrameFailed:
				con.printf("  frame %d failed after %d attempts\n", f.Frame, f.Attempts)
			}
		}
		return nil
	}

	// A line a job needs only the counters; --json answers the reports
	// whole, frames and all.
	list := c.RunningProgressCounts
	if con.json {
		list = c.RunningProgress
	}
	running, err := list(ctx)
	if err != nil {
		return r.explain(err)
	}
	if con.json {
		return con.result(running)
	}
	if len(running) == 0 {
		con.printf("no job is running\n")
		return nil
	}
	for i := range running {
		con.printf("job %s: %s\n", running[i].JobID, progressLine(&running[i]))
	}
	return nil
}

func cancelJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("cancel", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the canceled job as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm cancel JOB [flags]\n\nStops a job: queued frames are dropped and running ones stopped. Frames\nalready rendered stay downloadable.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1, "give one JOB id")
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)

	job, err := c.Cancel(ctx, pos[0])
	if err != nil {
		return r.explain(err)
	}
	con.printf("job %s: %s\n", job.ID, job.Status)
	if p, err := c.ProgressCounts(ctx, job.ID); err == nil && p.FramesCompleted > 0 {
		con.printf("%d frames were done; fetch them with: renderfarm download %s DIR\n", p.FramesCompleted, job.ID)
	}
	return con.result(job)
}

// setPriority is `renderfarm priority JOB N`.
func setPriority(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("priority", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the job as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm priority JOB N [flags]\n\nSets a job's priority among its workspace's jobs, from 0 (lowest) to 100\n(highest); the default is 50. Its waiting chunks take it at once; chunks\nrunning now go on.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 2, 2, "give a JOB id and a priority from 0 to 100")
	if err != nil {
		return err
	}
	priority, err := strconv.Atoi(pos[1])
	if err != nil {
		return fmt.Errorf("%w: the priority %q is not a whole number from 0 to 100", errUsage, pos[1])
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)
	job, err := c.SetPriority(ctx, pos[0], priority)
	if err != nil {
		return r.explain(err)
	}
	con.printf("job %s: priority %d (%s)\n", job.ID, job.Priority, job.Status)
	return con.result(job)
}

func statusNames() string {
	var names []string
	for _, s := range client.Statuses() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

func fileName(j *client.Job) string {
	if j.SceneFile == nil || j.SceneFile.FileName == "" {
		return "-"
	}
	return j.SceneFile.FileName
}

func frameSummary(j *client.Job) string {
	if j.FinalConfig == nil {
		return "-"
	}
	return strings.Join(j.FinalConfig.FrameRanges, ",")
}
