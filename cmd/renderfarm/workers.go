package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/store"
)

// listWorkers shows the farm's workers: name, state, the Blenders they
// run, what they render, and when they were last heard from.
func listWorkers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := app.DefaultBackends()
	fs := app.NewFlagSet("workers", stderr)
	b.RegisterFlags(fs)
	since := fs.Duration("since", 24*time.Hour, "list workers heard from within this time")
	timeout := fs.Duration("worker-timeout", engine.DefaultWorkerTimeout, "a worker silent this long counts as dead")
	jsonOut := fs.Bool("json", false, "print the workers as JSON")
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListWorkers(ctx, time.Now().Add(-*since))
	if err != nil {
		return err
	}
	type row struct {
		Name        string    `json:"name"`
		State       string    `json:"state"`
		CurrentTask string    `json:"currentTask"`
		Job         string    `json:"job,omitempty"`
		Chunk       int       `json:"chunk,omitempty"`
		LastSeen    time.Time `json:"lastSeen"`
		StartedAt   time.Time `json:"startedAt"`
		// BlenderVersions are the Blenders the worker runs.
		BlenderVersions []string `json:"blenderVersions"`
		// Slots, Tags, GPUs and MemoryGiB are what it offers chunks.
		Slots     int      `json:"slots"`
		Tags      []string `json:"tags"`
		GPUs      []string `json:"gpus"`
		MemoryGiB int      `json:"memoryGiB"`
		// Sick says why the node takes nothing until
		// `renderfarm workers enable NAME`; empty when it is well.
		Sick string `json:"sick,omitempty"`
	}
	sick, err := st.SickWorkers(ctx)
	if err != nil {
		return err
	}
	sickReason := map[string]string{}
	for _, h := range sick {
		sickReason[h.Name] = h.SickReason
	}
	rows := []row{}
	for _, w := range list {
		r := row{Name: w.Name, State: w.State, CurrentTask: w.CurrentTask, LastSeen: w.HeartbeatAt, StartedAt: w.StartedAt,
			BlenderVersions: w.BlenderVersions, Slots: w.Slots, Tags: w.Tags, GPUs: []string{}, MemoryGiB: w.Offer().MemoryGiB()}
		if r.Tags == nil {
			r.Tags = []string{}
		}
		for _, g := range w.GPUs {
			r.GPUs = append(r.GPUs, g.String())
		}
		if r.BlenderVersions == nil {
			r.BlenderVersions = []string{}
		}
		if r.State != "gone" && r.State != "stopped" && time.Since(w.HeartbeatAt) > *timeout {
			r.State = "dead"
		}
		if why, ok := sickReason[w.Name]; ok {
			// A sick node takes nothing, whatever its run says.
			r.State, r.Sick = "sick", why
		}
		if w.CurrentTask != "" {
			if t, err := st.GetTask(ctx, w.CurrentTask); err == nil {
				r.Job, r.Chunk = t.JobID, t.Chunk
			}
		}
		rows = append(rows, r)
	}
	if *jsonOut {
		return writeJSON(stdout, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no workers seen")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tBLENDER\tSLOTS\tTAGS\tGPUS\tMEMORY\tJOB\tCHUNK\tLAST SEEN")
	for _, r := range rows {
		job, chunk := "-", "-"
		if r.Job != "" {
			job, chunk = r.Job, fmt.Sprint(r.Chunk)
		}
		blender := strings.Join(r.BlenderVersions, ",")
		if blender == "" {
			blender = "-"
		}
		tags, gpus := strings.Join(r.Tags, ","), strings.Join(r.GPUs, ",")
		if tags == "" {
			tags = "-"
		}
		if gpus == "" {
			gpus = "-"
		}
		fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d GiB\t%s\t%s\t%s ago\n", r.Name, r.State, blender, r.Slots, tags, gpus, r.MemoryGiB, job, chunk, time.Since(r.LastSeen).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Sick != "" {
			fprintf(stdout, "%s is sick: %s; once it is mended: renderfarm workers enable %s\n", r.Name, r.Sick, r.Name)
		}
	}
	return nil
}

// enableWorker lets a sick render node take work again.
func enableWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := app.DefaultBackends()
	fs := app.NewFlagSet("workers enable", stderr)
	b.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm workers enable NAME [flags]\n\nLets a render node found sick (chunks of several jobs in a row failed on it)\ntake work again, with a clean record.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1, "give one worker NAME")
	if err != nil {
		return err
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	wasSick, err := st.EnableWorker(ctx, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no render node named %q is known to the farm; `renderfarm workers` lists them", pos[0])
	}
	if err != nil {
		return err
	}
	if wasSick {
		fprintf(stdout, "%s is enabled: it takes work again\n", pos[0])
	} else {
		fprintf(stdout, "%s was not sick; its record of failures is cleared\n", pos[0])
	}
	return nil
}
