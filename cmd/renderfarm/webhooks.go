package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
)

const webhooksUsage = `Usage:
  renderfarm webhooks create URL [--events onRenderComplete,onRenderFail,onStatusChange] [--json]
  renderfarm webhooks list [--json]
  renderfarm webhooks delete ID
  renderfarm webhooks deliveries ID [--json]
`

// webhooks manages the workspace's webhook receivers.
func webhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, webhooksUsage)
		return fmt.Errorf("%w: say what to do with webhooks: create, list, delete or deliveries", errUsage)
	}
	switch args[0] {
	case "create":
		return createWebhook(ctx, args[1:], stdout, stderr)
	case "list":
		return listWebhooks(ctx, args[1:], stdout, stderr)
	case "delete":
		return deleteWebhook(ctx, args[1:], stdout, stderr)
	case "deliveries":
		return webhookDeliveries(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, webhooksUsage)
	return fmt.Errorf("%w: unknown webhooks command %q", errUsage, args[0])
}

func createWebhook(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("webhooks create", stderr)
	var r remote
	r.register(fs)
	events := fs.String("events", strings.Join([]string{client.EventRenderComplete, client.EventRenderFail}, ","),
		"comma-separated events: onRenderComplete, onRenderFail, onStatusChange")
	jsonOut := fs.Bool("json", false, "print the webhook, secret included, as JSON on stdout")
	pos, err := parseArgs(fs, args, 1, 1, "give the URL the farm should POST events to")
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)
	var list []string
	for _, ev := range strings.Split(*events, ",") {
		if ev = strings.TrimSpace(ev); ev != "" {
			list = append(list, ev)
		}
	}
	hook, err := c.CreateWebhook(ctx, pos[0], list)
	if err != nil {
		return r.explain(err)
	}
	if con.json {
		return con.result(hook)
	}
	con.printf("webhook %s: %s gets %s\n", hook.ID, hook.URL, strings.Join(hook.Events, ", "))
	con.printf("secret: %s\n(shown only now: deliveries are signed with it; verify them with client.VerifyWebhook)\n", hook.Secret)
	return nil
}

func listWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("webhooks list", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the webhooks as JSON on stdout")
	if _, err := parseArgs(fs, args, 0, 0, "webhooks list takes no arguments"); err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)
	hooks, err := c.ListWebhooks(ctx)
	if err != nil {
		return r.explain(err)
	}
	if con.json {
		return con.result(hooks)
	}
	if len(hooks) == 0 {
		con.printf("no webhooks\n")
		return nil
	}
	tw := tabwriter.NewWriter(con.text(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WEBHOOK\tURL\tEVENTS\tCREATED")
	for _, h := range hooks {
		fprintf(tw, "%s\t%s\t%s\t%s\n", h.ID, h.URL, strings.Join(h.Events, ","), h.CreatedAt.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func deleteWebhook(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("webhooks delete", stderr)
	var r remote
	r.register(fs)
	pos, err := parseArgs(fs, args, 1, 1, "give one webhook ID")
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	if err := c.DeleteWebhook(ctx, pos[0]); err != nil {
		return r.explain(err)
	}
	fprintf(stdout, "webhook %s deleted\n", pos[0])
	return nil
}

func webhookDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("webhooks deliveries", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the attempts as JSON on stdout")
	pos, err := parseArgs(fs, args, 1, 1, "give one webhook ID")
	if err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)
	attempts, err := c.WebhookDeliveries(ctx, pos[0])
	if err != nil {
		return r.explain(err)
	}
	if con.json {
		return con.result(attempts)
	}
	if len(attempts) == 0 {
		con.printf("no deliveries yet\n")
		return nil
	}
	tw := tabwriter.NewWriter(con.text(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tEVENT\tJOB\tTRY\tRESULT\tTOOK\tNEXT TRY")
	for _, a := range attempts {
		result := "no answer"
		if a.HTTPStatus != nil {
			result = fmt.Sprint(*a.HTTPStatus)
		}
		if a.Error != nil {
			result += ": " + *a.Error
		}
		next := "-"
		if a.NextRetryAt != nil {
			next = a.NextRetryAt.Local().Format("15:04:05")
		}
		fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%dms\t%s\n", a.AttemptedAt.Local().Format("2006-01-02 15:04:05"), a.Event, a.JobID, a.Attempt, result, a.DurationMs, next)
	}
	return tw.Flush()
}
