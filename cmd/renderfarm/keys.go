package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/service"
	"github.com/renderfarm/renderfarm/internal/store"
)

const keysUsage = `Usage:
  renderfarm keys create [--workspace NAME] [--name TEXT] [--expires 90d]
  renderfarm keys list [--workspace NAME] [--json]
  renderfarm keys revoke ID

Each also takes --data-dir or --database, as serve does.
`

// maxKeyLifetime is the longest --expires: beyond it, leave --expires out
// for a key that never expires.
const maxKeyLifetime = 36500 * 24 * time.Hour

// keys manages the farm's API keys, straight in its database: it is for
// the farm's operator, not for API clients.
func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("%w: say what to do with keys: create, list or revoke", errUsage)
	}
	switch args[0] {
	case "create":
		return createKey(ctx, args[1:], stdout, stderr)
	case "list":
		return listKeys(ctx, args[1:], stdout, stderr)
	case "revoke":
		return revokeKey(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, keysUsage)
	return fmt.Errorf("%w: unknown keys command %q", errUsage, args[0])
}

// createKey prints the new key, and only the key, on stdout, so that
// scripts can take it as it is; what it is for goes to stderr.
func createKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("keys create", stderr)
	b := app.DefaultBackends()
	b.RegisterFlags(fs)
	workspace := fs.String("workspace", "default", "the workspace the key belongs to (created if new)")
	name := fs.String("name", "", fmt.Sprintf("what the key is for, shown by keys list (at most %d characters)", service.MaxKeyNameLength))
	var lifetime keyLifetime
	fs.Var(&lifetime, "expires", "how long the key works: days (90d) or a duration (12h, 30m); empty: until revoked")
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	req := service.NewAPIKey{Workspace: *workspace, Name: *name}
	if lifetime > 0 {
		req.ExpiresAt = time.Now().Add(time.Duration(lifetime))
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	created, err := service.IssueAPIKey(ctx, st, req)
	if err != nil {
		return operatorError(err)
	}
	fmt.Fprintln(stdout, created.Key)
	expiry := "never expires"
	if created.Info.ExpiresAt != nil {
		expiry = "expires " + created.Info.ExpiresAt.Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "created API key %s %s for workspace %q; it %s. The key is shown only this once: only its hash is stored.\n",
		created.Info.ID, quotedOrNothing(created.Info.Name), created.Info.Workspace, expiry)
	return nil
}

func quotedOrNothing(s string) string {
	if s == "" {
		return "(no name)"
	}
	return strconv.Quote(s)
}

// keyLifetime is the value of --expires: a number of days with a "d"
// (90d), or a Go duration (12h, 90m); "" is no expiry.
type keyLifetime time.Duration

func (l *keyLifetime) String() string {
	if *l == 0 {
		return ""
	}
	return time.Duration(*l).String()
}

func (l *keyLifetime) Set(s string) error {
	d, err := parseKeyLifetime(s)
	if err != nil {
		return err
	}
	*l = keyLifetime(d)
	return nil
}

// parseKeyLifetime reads --expires: "" (never), a whole number of days
// ("90d"), or a Go duration ("12h", "1h30m"), between one second and 100
// years.
func parseKeyLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days; write days as 90d, or a duration such as 12h", s)
		}
		if n < 1 || n > int(maxKeyLifetime/(24*time.Hour)) {
			return 0, fmt.Errorf("%q: give between 1d and %dd, or leave --expires out for a key that works until it is revoked", s, int(maxKeyLifetime/(24*time.Hour)))
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a lifetime; write days as 90d, or a duration such as 12h or 90m", s)
		}
	}
	if d < time.Second || d > maxKeyLifetime {
		return 0, fmt.Errorf("%q: a key's lifetime must be between 1s and %dd; leave --expires out for a key that works until it is revoked", s, int(maxKeyLifetime/(24*time.Hour)))
	}
	return d, nil
}

// keyRow is a key as keys list --json prints it: never the key or its hash.
type keyRow struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	ExpiresAt  *time.Time `json:"expiresAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

// keyState is "revoked", "expired" or "active".
func keyState(k store.APIKeyInfo, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	}
	return "active"
}

func listKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("keys list", stderr)
	b := app.DefaultBackends()
	b.RegisterFlags(fs)
	workspace := fs.String("workspace", "", "list only this workspace's keys (empty: every workspace)")
	jsonOut := fs.Bool("json", false, "print the keys as JSON")
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := service.ListAPIKeys(ctx, st, *workspace)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := make([]keyRow, 0, len(list))
	for _, k := range list {
		rows = append(rows, keyRow{ID: k.ID, Workspace: k.Workspace, Name: k.Name, Prefix: k.Prefix, State: keyState(k, now),
			CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt})
	}
	if *jsonOut {
		return writeJSON(stdout, rows)
	}
	if len(rows) == 0 {
		if *workspace != "" {
			fmt.Fprintf(stdout, "workspace %q has no API keys\n", *workspace)
		} else {
			fmt.Fprintln(stdout, "no API keys")
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKSPACE\tNAME\tPREFIX\tSTATE\tCREATED\tLAST USED\tEXPIRES\tREVOKED")
	for _, r := range rows {
		name := r.Name
		if name == "" {
			name = "-"
		}
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workspace, name, r.Prefix, r.State,
			r.CreatedAt.Format(time.RFC3339), timeOr(r.LastUsedAt, "never"), timeOr(r.ExpiresAt, "never"), timeOr(r.RevokedAt, "-"))
	}
	return tw.Flush()
}

// timeOr formats t to the second, or says none when there is no t.
func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

func revokeKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("keys revoke", stderr)
	b := app.DefaultBackends()
	b.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm keys revoke ID [flags]\n\nRevokes the API key with this id (the ID column of `renderfarm keys list`):\nevery API server refuses it within 2 s, with 401 KEY_REVOKED.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1, "give the ID of one key, as `renderfarm keys list` shows it")
	if err != nil {
		return err
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	k, revoked, err := service.RevokeAPIKey(ctx, st, pos[0])
	if err != nil {
		return operatorError(err)
	}
	if !revoked {
		fmt.Fprintf(stdout, "API key %s (%s, workspace %q) was already revoked at %s\n", k.ID, k.Prefix, k.Workspace, timeOr(k.RevokedAt, "-"))
		return nil
	}
	fmt.Fprintf(stdout, "revoked API key %s (%s %s, workspace %q) at %s; every API server refuses it within 2 s\n",
		k.ID, k.Prefix, quotedOrNothing(k.Name), k.Workspace, timeOr(k.RevokedAt, "-"))
	return nil
}

// operatorError turns the engine's refusals into what the command line
// says: the message alone, and exit code 2 for a mistake in the input.
func operatorError(err error) error {
	var fe *farm.Error
	if !errors.As(err, &fe) {
		return err
	}
	if fe.Kind == farm.KindInvalid {
		return fmt.Errorf("%w: %s", errUsage, fe.Message)
	}
	return errors.New(fe.Message)
}
