package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/renderfarm/renderfarm/internal/store"
)

// riverDriver gives River the farm's own database, so that River's jobs
// are inserted in the farm's transactions. On SQLite that is riversqlite.
// On PostgreSQL it is River's database/sql driver (the farm's queries run
// through database/sql) with a pgx pool of its own for LISTEN/NOTIFY, so
// that new work reaches workers at once instead of at the next poll.
func riverDriver(ctx context.Context, st *store.Store, postgresDSN string) (riverdriver.Driver[*sql.Tx], func(), error) {
	switch st.Dialect() {
	case store.DialectSQLite:
		return riversqlite.New(st.DB()), func() {}, nil
	case store.DialectPostgres:
		if postgresDSN == "" {
			return nil, nil, errors.New("engine: PostgresDSN is required on PostgreSQL")
		}
		cfg, err := pgxpool.ParseConfig(postgresDSN)
		if err != nil {
			return nil, nil, fmt.Errorf("engine: River's listener connection: %w", err)
		}
		// The pool only hands River its one listening connection (River
		// keeps it); pgx's default of max(4, CPUs) would let a process
		// hold more than the one connection its configuration counts.
		cfg.MaxConns, cfg.MinConns = ListenerConnections, 0
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("engine: River's listener connection: %w", err)
		}
		return riverdatabasesql.NewWithPgxListener(st.DB(), pool), pool.Close, nil
	}
	return nil, nil, fmt.Errorf("engine: unknown database dialect %q", st.Dialect())
}

// ListenerConnections is how many PostgreSQL connections a process holds
// beside its store's pool: River's LISTEN connection.
const ListenerConnections = 1

// riverMigrationLock is the advisory lock key that serialises River's
// migrations when several replicas start at once.
const riverMigrationLock = 0x72656e646572 // "render"

// migrateRiver brings River's tables up to date. On PostgreSQL, replicas
// starting together take turns through a session advisory lock, so exactly
// one of them migrates and the others find nothing to do. (River applies
// each version in a transaction of its own, which PostgreSQL needs: a
// version that adds an enum value cannot use it in the same transaction.)
func migrateRiver(ctx context.Context, st *store.Store, driver riverdriver.Driver[*sql.Tx]) error {
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if st.Dialect() == store.DialectPostgres {
		conn, err := st.DB().Conn(ctx)
		if err != nil {
			return fmt.Errorf("engine: migrate River tables: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, riverMigrationLock); err != nil {
			return fmt.Errorf("engine: migrate River tables: %w", err)
		}
		defer func() {
			// Unlock so the pooled session goes back clean.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, riverMigrationLock)
		}()
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("engine: migrate River tables: %w", err)
	}
	return nil
}

// Migrate brings the farm's River tables up to date without starting
// anything, for `renderfarm migrate`.
func Migrate(ctx context.Context, st *store.Store, postgresDSN string) error {
	driver, closeDriver, err := riverDriver(ctx, st, postgresDSN)
	if err != nil {
		return err
	}
	defer closeDriver()
	return migrateRiver(ctx, st, driver)
}
