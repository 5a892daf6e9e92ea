// Command renderfarm is a self-hosted render farm for Blender that speaks
// the Renderjuice external API v1.
//
//	renderfarm serve        the API, the job engine and local render workers
//	renderfarm keys         create, list and revoke API keys
//
// the client commands that talk to a farm over its API: submit, jobs,
// status, progress, cancel, download and webhooks; and pack and addon, which
// help an artist send a shot from Blender.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/renderfarm/renderfarm/internal/app"
)

const usage = `renderfarm: a self-hosted render farm for Blender

Usage:
  renderfarm serve [flags]         run the API, the job engine and render workers
  renderfarm worker [flags]        a render node on PostgreSQL and S3 (--database, --storage)
  renderfarm migrate [flags]       bring the database's schema up to date
  renderfarm workers [flags]       list the render workers and what they do, sick ones too
  renderfarm workers enable NAME   let a sick render node take work again
  renderfarm keys create [flags]   create an API key for a workspace (--name, --expires 90d)
  renderfarm keys list [flags]     list the API keys: id, workspace, name, prefix, use, expiry
  renderfarm keys revoke ID        revoke an API key; every API server refuses it within 2 s
  renderfarm workspaces list       the workspaces' weights, quotas, jobs, running and waiting chunks, storage, render time
  renderfarm workspaces create NAME / rename OLD NEW   make or rename a workspace
  renderfarm workspaces set NAME --weight N --max-running-chunks N --max-storage-bytes N --max-render-hours-per-month H
                                   share the farm between workspaces
  renderfarm usage [flags]         each workspace's render seconds, frames, bytes stored and served, by day (--since 30d, --csv)

Client commands, for any farm (--server, --api-key):
  renderfarm submit FILE [flags]   upload a .blend (packed with the files it uses), .zip or project folder, validate, render
  renderfarm jobs [flags]          list the jobs of the workspace
  renderfarm status JOB [flags]    show a job; --wait follows it to the end
  renderfarm progress [JOB]        frames done and time left, of one job or all running
  renderfarm blender               the Blender versions the farm's render nodes run
  renderfarm cancel JOB            stop a job
  renderfarm suspend JOB           pause a rendering job; frames done stay
  renderfarm resume JOB            render the rest of a suspended job (approves scout frames)
  renderfarm retry JOB --failed    render again the frames that failed (--frames R: those frames)
  renderfarm priority JOB N        set a job's priority, 0 (lowest) to 100 (highest; default 50)
  renderfarm download JOB DIR      fetch a job's frames, zip and video into DIR
  renderfarm webhooks create|list|delete|deliveries   manage webhook receivers

Packing and Blender, on the artist's machine:
  renderfarm pack FILE.blend OUT.zip   a project zip of the .blend and every file it uses, found by Blender
  renderfarm addon OUT.zip             write the Blender add-on (submit from the Render properties)

Run "renderfarm COMMAND -h" for the flags of a command. Every flag can also
be set in the environment as RENDERFARM_NAME (for example RENDERFARM_ADDR,
RENDERFARM_SERVER, RENDERFARM_API_KEY).
`

// errUsage marks a mistake on the command line: exit code 2.
var errUsage = app.ErrUsage

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "worker":
		err = worker(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, stderr)
	case "priority":
		err = setPriority(ctx, args[1:], stdout, stderr)
	case "workspaces":
		err = workspaces(ctx, args[1:], stdout, stderr)
	case "workers":
		if len(args) > 1 && args[1] == "enable" {
			err = enableWorker(ctx, args[2:], stdout, stderr)
		} else {
			err = listWorkers(ctx, args[1:], stdout, stderr)
		}
	case "keys":
		err = keys(ctx, args[1:], stdout, stderr)
	case "usage":
		err = usageReport(ctx, args[1:], stdout, stderr)
	case "submit":
		err = submit(ctx, args[1:], stdout, stderr)
	case "pack":
		err = packCommand(ctx, args[1:], stdout, stderr)
	case "addon":
		err = addonCommand(ctx, args[1:], stdout, stderr)
	case "jobs":
		err = listJobs(ctx, args[1:], stdout, stderr)
	case "status":
		err = showStatus(ctx, args[1:], stdout, stderr)
	case "progress":
		err = showProgress(ctx, args[1:], stdout, stderr)
	case "blender":
		err = listBlender(ctx, args[1:], stdout, stderr)
	case "cancel":
		err = cancelJob(ctx, args[1:], stdout, stderr)
	case "suspend":
		err = suspendJob(ctx, args[1:], stdout, stderr)
	case "resume":
		err = resumeJob(ctx, args[1:], stdout, stderr)
	case "retry":
		err = retryJob(ctx, args[1:], stdout, stderr)
	case "download":
		err = downloadJob(ctx, args[1:], stdout, stderr)
	case "webhooks":
		err = webhooks(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "renderfarm: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var exit *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		if exit.err != nil {
			printError(stderr, args[0], exit.err)
		}
		return exit.code
	case errors.Is(err, errUsage):
		printError(stderr, args[0], err)
		return 2
	default:
		printError(stderr, args[0], err)
		return 1
	}
}

// printError prints the error a command ended with. Its message may run
// over lines the command wrote, which stay; any other control character
// is escaped, since an error may quote a file's names, a path or the
// farm. (Text from the farm is escaped where it enters an error, newlines
// included: see outcome and remote.explain.)
func printError(stderr io.Writer, command string, err error) {
	fmt.Fprintf(stderr, "renderfarm %s: %s\n", command, escapeLines(err.Error()))
}
