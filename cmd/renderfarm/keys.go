package main

import (
	"context"
	"fmt"
	"io"

	"github.com/renderfarm/renderfarm/internal/engine"
)

func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("%w: use \"renderfarm keys create --workspace NAME\"", errUsage)
	}
	fs := newFlagSet("keys create", stderr)
	var b backends
	b.register(fs)
	workspace := fs.String("workspace", "default", "the workspace the key belongs to (created if new)")
	if err := parseWithEnv(fs, args[1:]); err != nil {
		return err
	}
	st, err := b.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := engine.CreateAPIKey(ctx, st, *workspace)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	return nil
}
