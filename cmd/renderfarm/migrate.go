package main

import (
	"context"
	"fmt"
	"io"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/engine"
)

// migrate brings the database's schema (the farm's and River's) up to date,
// for deployments that migrate before rolling out new binaries. serve and
// worker migrate at start too.
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := app.DefaultBackends()
	fs := app.NewFlagSet("migrate", stderr)
	b.RegisterFlags(fs)
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := engine.Migrate(ctx, st, b.PostgresDSN()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "the %s database is up to date\n", st.Dialect())
	return nil
}
