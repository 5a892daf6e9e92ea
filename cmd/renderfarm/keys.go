package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/store"
)

func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("%w: use \"renderfarm keys create --workspace NAME\"", errUsage)
	}
	fs := newFlagSet("keys create", stderr)
	dataDir := fs.String("data-dir", "./renderfarm-data", "the data directory of the farm")
	workspace := fs.String("workspace", "default", "the workspace the key belongs to (created if new)")
	if err := parseWithEnv(fs, args[1:]); err != nil {
		return err
	}
	st, err := openStore(ctx, *dataDir)
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

// openStore opens the SQLite database in the data directory.
func openStore(ctx context.Context, dataDir string) (*store.Store, error) {
	if err := mkdirData(dataDir); err != nil {
		return nil, err
	}
	return store.OpenSQLite(ctx, filepath.Join(dataDir, "renderfarm.db"))
}
