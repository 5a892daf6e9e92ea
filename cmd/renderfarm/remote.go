package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
)

// Exit codes of the client commands, so that a script can tell a render
// that failed from a mistake in its own command line.
const (
	exitFailed      = 1   // the job failed, or the farm could not be reached
	exitUsage       = 2   // bad flags or input, or the API refused the request as bad
	exitCanceled    = 3   // the job was canceled
	exitInterrupted = 130 // Ctrl-C, as shells report a SIGINT
)

// exitError ends a command with a chosen exit code. run prints err when it
// is not nil; a command that already said everything leaves it nil.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// defaultServer is where scripts/run.sh starts the farm, so that a client
// on the farm's own machine needs no --server.
const defaultServer = "http://127.0.0.1:8080"

// remote holds the flags every client command shares: where the farm is
// and the key to use there.
type remote struct {
	server string
	apiKey string
}

func (r *remote) register(fs *flag.FlagSet) {
	fs.StringVar(&r.server, "server", defaultServer, "the farm's URL")
	fs.StringVar(&r.apiKey, "api-key", "", "the API key; prefer RENDERFARM_API_KEY, which other users cannot see in the process list")
}

// client checks the flags and returns a client for the farm. A missing
// key is caught here rather than by a 401 from the server, so that the
// message can say both how to pass a key and how to get one.
func (r *remote) client() (*client.Client, error) {
	u, err := url.Parse(r.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, exitWith(exitUsage, "--server %q is not a URL such as %s", r.server, defaultServer)
	}
	if strings.TrimSpace(r.apiKey) == "" {
		return nil, exitWith(exitUsage, "no API key: pass --api-key KEY or set RENDERFARM_API_KEY.\n"+
			"To create a key, run on the farm's machine: renderfarm keys create --workspace NAME")
	}
	hc := &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		// A farm that does not answer at all should be reported in
		// seconds, not after the operating system gives up.
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}
	return client.New(r.server, r.apiKey, client.WithHTTPClient(hc), client.WithUserAgent("renderfarm-cli")), nil
}

// explain turns an error of the client package into one that says what to
// fix, with the exit code it deserves. Commands that can say more about
// an interruption (what goes on, how to resume) check for it first.
func (r *remote) explain(err error) error {
	if err == nil {
		return nil
	}
	var exit *exitError
	if errors.As(err, &exit) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return exitWith(exitInterrupted, "interrupted")
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		err = &farmTextError{err: err, farm: apiErr}
		switch {
		case apiErr.StatusCode == http.StatusUnauthorized:
			return exitWith(exitUsage, "the farm at %s refused the API key (%d %s).\n"+
				"Check --api-key or RENDERFARM_API_KEY; a new key is made on the farm's machine with: renderfarm keys create --workspace NAME",
				r.server, apiErr.StatusCode, escapeText(apiErr.Code))
		case apiErr.StatusCode >= 400 && apiErr.StatusCode < 500:
			return &exitError{code: exitUsage, err: err}
		}
		return &exitError{code: exitFailed, err: err}
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		if host := r.otherHost(err); host != "" {
			// The farm answered and handed out a URL of its file store
			// (an upload or a download), which this machine cannot reach.
			return exitWith(exitFailed, "cannot reach %s, where the farm at %s keeps its files (its upload and download URLs point there): %v\n"+
				"The farm itself answers; ask its operator whether that storage is up and reachable from this machine", host, r.server, err)
		}
		return exitWith(exitFailed, "cannot reach the farm at %s: %v\n"+
			"Check --server or RENDERFARM_SERVER, and that \"renderfarm serve\" runs there", r.server, err)
	}
	return &exitError{code: exitFailed, err: err}
}

// farmTextError is err, which wraps the farm's answer farm, with farm's
// text escaped (escapeText) where it appears in err's: the farm's message
// may quote a job's names, and a newline in it would otherwise start a
// line of the command's output.
type farmTextError struct {
	err  error
	farm error
}

func (e *farmTextError) Error() string {
	text := e.farm.Error()
	return strings.Replace(e.err.Error(), text, escapeText(text), 1)
}

func (e *farmTextError) Unwrap() error { return e.err }

// otherHost is the host of the request err failed on when that is not the
// farm's own (--server), "" otherwise.
func (r *remote) otherHost(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return ""
	}
	failed, err1 := url.Parse(ue.URL)
	farm, err2 := url.Parse(r.server)
	if err1 != nil || err2 != nil || failed.Host == "" || strings.EqualFold(failed.Host, farm.Host) {
		return ""
	}
	return failed.Host
}

// interrupted reports whether the command was stopped by Ctrl-C (or a
// SIGTERM), as opposed to failing on its own.
func interrupted(ctx context.Context) bool {
	return ctx.Err() != nil
}

// parseArgs parses a command line whose flags and positional arguments may
// come in any order ("submit scene.blend --wait" as well as "submit --wait
// scene.blend"), which the flag package alone does not allow. It returns
// the positional arguments, of which the command takes at least least and
// at most most; usage names them for the error message.
func parseArgs(fs *flag.FlagSet, args []string, least, most int, usage string) ([]string, error) {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if hasValue {
			continue
		}
		// A flag that is not a boolean takes the next argument as its
		// value, even when that value looks like a file name.
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := app.ParseFlags(fs, flags); err != nil {
		return nil, err
	}
	if len(positional) < least || len(positional) > most {
		return nil, fmt.Errorf("%w: %s", errUsage, usage)
	}
	return positional, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// given reports whether a flag was set, on the command line or from the
// environment, so that a render setting left out is not sent as zero.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
