// Command renderfarm is a self-hosted render farm for Blender that speaks
// the Renderjuice external API v1.
//
//	renderfarm serve        the API, the job engine and local render workers
//	renderfarm keys create  a new API key for a workspace
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
)

const usage = `renderfarm: a self-hosted render farm for Blender

Usage:
  renderfarm serve [flags]         run the API, the job engine and render workers
  renderfarm keys create [flags]   create an API key for a workspace

Run "renderfarm COMMAND -h" for the flags of a command. Every flag can also
be set in the environment as RENDERFARM_NAME (for example RENDERFARM_ADDR).
`

// errUsage marks a mistake on the command line: exit code 2.
var errUsage = errors.New("usage")

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
	case "keys":
		err = keys(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "renderfarm: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "renderfarm %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "renderfarm %s: %v\n", args[0], err)
		return 1
	}
}
