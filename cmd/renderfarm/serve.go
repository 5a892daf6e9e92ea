package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/renderfarm/renderfarm/internal/app"
)

// serve runs the API, the job engine and local render workers, and
// worker a render node only, until ctx ends: their flags and an app.Main.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runMain(ctx, app.Serve, args, stdout, stderr)
}

// worker runs a render node: no HTTP port, only the farm's database and
// bucket. It takes validation, render and finalize work, fetches each
// job's input from the bucket, and stores frames as Blender saves them.
func worker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runMain(ctx, app.Worker, args, stdout, stderr)
}

func runMain(ctx context.Context, role app.Role, args []string, stdout, stderr io.Writer) error {
	cfg, err := app.ParseConfig(role, args, app.NewFlagSet(string(role), stderr))
	if err != nil {
		return err
	}
	m := app.NewMain(cfg, stderr)
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	if role == app.Serve {
		fmt.Fprintf(stdout, "renderfarm serving at %s\n", m.URL())
	} else {
		fmt.Fprintf(stdout, "renderfarm worker %s running\n", cfg.WorkerName)
	}
	waitErr := m.Wait(ctx)
	// The first SIGTERM or SIGINT ended ctx: the process stops taking
	// work and lets what runs finish, for up to --shutdown-timeout. A
	// second one stops it at once.
	now, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Shutdown(now); err != nil && waitErr == nil {
		waitErr = err
	}
	if waitErr == nil && m.StoppedByForce() {
		// Nothing is lost, but the stop did not finish the work: a
		// supervisor must be able to tell.
		return &exitError{code: app.ExitStoppedByForce, err: errors.New("stopped before the running work finished (--shutdown-timeout passed, or a second SIGTERM or SIGINT came); that work was handed back to other workers")}
	}
	return waitErr
}
