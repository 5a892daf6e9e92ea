package enginetest

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

var discardLogger = slog.New(slog.DiscardHandler)

// Main runs a package's tests (call it from TestMain) and then drops the
// PostgreSQL template database the farms were copied from.
func Main(m *testing.M) int {
	code := m.Run()
	if dropTemplate != nil {
		if err := dropTemplate(); err != nil {
			os.Stderr.WriteString("enginetest: drop the template database: " + err.Error() + "\n")
		}
	}
	return code
}

// sqliteTemplate is the bytes of a SQLite database with the farm's and
// River's tables, made once: every farm starts from a copy.
var sqliteTemplate = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "enginetest-db-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "template.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return nil, err
	}
	err = engine.Migrate(ctx, st, "")
	if err == nil {
		// Fold the write-ahead log into the file, so the file is whole.
		_, err = st.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	if closeErr := st.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

// dropTemplate removes the PostgreSQL template, once made.
var dropTemplate func() error

// postgresTemplate is the name of a PostgreSQL database with the farm's
// and River's tables, made once: every farm's database is created as a
// copy of it, which PostgreSQL does in milliseconds.
var postgresTemplate = sync.OnceValues(func() (string, error) {
	server, err := testbackends.OpenPostgres()
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	dsn, drop, err := server.CreateDatabase(ctx, "")
	if err != nil {
		server.Close()
		return "", err
	}
	dropTemplate = func() error {
		defer server.Close()
		return drop()
	}
	st, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		return "", err
	}
	err = engine.Migrate(ctx, st, dsn)
	// A template is copied only while nobody is connected to it.
	if closeErr := st.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return "", err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(u.Path, "/"), nil
})
