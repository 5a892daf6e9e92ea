package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
)

// suspendJob and resumeJob pause a rendering job and render the rest of
// a suspended one (also the approval of a job's scout frames).
func suspendJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return controlJob(ctx, "suspend", "Pauses a booting or rendering job: its running Blender processes stop,\nframes already rendered stay downloadable, and the rest wait for\n\"renderfarm resume JOB\".",
		(*client.Client).Suspend, args, stdout, stderr)
}

func resumeJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return controlJob(ctx, "resume", "Renders the frames of a suspended job that are not done yet; a job\nwaiting with its scout frames ready is approved so.",
		(*client.Client).Resume, args, stdout, stderr)
}

func controlJob(ctx context.Context, name, about string, move func(*client.Client, context.Context, string) (*client.Job, bool, error),
	args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet(name, stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the job as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: renderfarm %s JOB [flags]\n\n%s\n\nFlags:\n", name, about)
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
	job, replay, err := move(c, ctx, pos[0])
	if err != nil {
		return r.explain(err)
	}
	already := ""
	if replay {
		already = " (already)"
	}
	con.printf("job %s: %s%s\n", job.ID, job.Status, already)
	return con.result(job)
}

// retryJob renders again the failed frames of a job that ended, or the
// frames named.
func retryJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("retry", stderr)
	var r remote
	r.register(fs)
	failed := fs.Bool("failed", false, "render again every frame that did not complete")
	var frames stringList
	fs.Var(&frames, "frames", "frames of the job to render again, such as 12 or 40-45 (repeat the flag for more)")
	jsonOut := fs.Bool("json", false, "print the job as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm retry JOB (--failed | --frames R)\n\nRenders again some frames of a completed, failed or canceled job with\nits final settings, then makes its zip and preview again.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1, "give one JOB id")
	if err != nil {
		return err
	}
	var req client.RetryRequest
	switch {
	case *failed && len(frames) > 0:
		return fmt.Errorf("%w: give --failed or --frames, not both", errUsage)
	case *failed:
		req.Frames = client.RetryFailed
	case len(frames) > 0:
		req.FrameRanges = frames
	default:
		return fmt.Errorf("%w: say which frames: --failed, or --frames 12 --frames 40-45", errUsage)
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)
	job, err := c.Retry(ctx, pos[0], req)
	if err != nil {
		return r.explain(err)
	}
	con.printf("job %s: %s; follow it with: renderfarm status %s --wait\n", job.ID, job.Status, job.ID)
	return con.result(job)
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string { return fmt.Sprint([]string(*l)) }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}
