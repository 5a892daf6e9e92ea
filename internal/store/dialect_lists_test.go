package store

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// eachDialect runs test on a store of each database, fresh and migrated.
func eachDialect(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, openSQLiteForTest(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := OpenPostgres(t.Context(), testbackends.PostgresDatabase(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
}

// A list is one parameter whatever its length, and means what it holds:
// values with quotes, commas, brackets, backslashes and JSON of their
// own are compared as they are, and an empty list holds nothing.
func TestAListParameterHoldsItsValuesAsTheyAre(t *testing.T) {
	t.Parallel()
	nasty := []string{`it's`, `a,b`, `"quoted"`, `[1]`, `back\slash`, `{"id": 1}`, `日本`, ``, `NULL`}
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		q := s.Queries
		if _, err := s.db.ExecContext(ctx, `CREATE TABLE list_test (x TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for _, v := range append([]string{"plain"}, nasty...) {
			if _, err := q.exec(ctx, `INSERT INTO list_test (x) VALUES (?)`, v); err != nil {
				t.Fatal(err)
			}
		}
		read := func(cond string, values []string) []string {
			t.Helper()
			rows, err := q.query(ctx, `SELECT x FROM list_test WHERE `+cond+` ORDER BY x`, list(q.dialect, values))
			if err != nil {
				t.Fatalf("%s: %v", cond, err)
			}
			defer rows.Close()
			got := []string{}
			for rows.Next() {
				var x string
				if err := rows.Scan(&x); err != nil {
					t.Fatal(err)
				}
				got = append(got, x)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return got
		}
		all := read(q.dialect.noneOf("x"), nil)
		if len(all) != len(nasty)+1 {
			t.Fatalf("none of an empty list: %q, want every row", all)
		}
		for _, v := range nasty {
			if got := read(q.dialect.oneOf("x"), []string{v, "absent"}); !slices.Equal(got, []string{v}) {
				t.Errorf("one of [%q, absent] = %q, want just it", v, got)
			}
			if got := read(q.dialect.noneOf("x"), []string{v}); len(got) != len(all)-1 || slices.Contains(got, v) {
				t.Errorf("none of [%q] = %q, want every other row", v, got)
			}
		}
		if got := read(q.dialect.oneOf("x"), nil); len(got) != 0 {
			t.Errorf("one of an empty list = %q, want nothing", got)
		}
		if got := read(q.dialect.oneOf("x"), nasty); len(got) != len(nasty) {
			t.Errorf("one of every odd value = %q, want %d rows", got, len(nasty))
		}
	})
}

// rows binds a table of any number of rows as one parameter a column, its
// rows in order and each column of its type.
func TestRowsBindATableAsOneListAColumn(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *Store) {
		q := s.Queries
		read := func(ctx context.Context, ids, names []string, big []int64, small []int) [][4]any {
			t.Helper()
			rows, err := q.query(ctx, `SELECT id, name, big, small FROM `+q.dialect.rows("id text", "name text", "big bigint", "small integer")+` AS r ORDER BY id`,
				list(q.dialect, ids), list(q.dialect, names), list(q.dialect, big), list(q.dialect, small))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got [][4]any
			for rows.Next() {
				var id, name string
				var b int64
				var sm int
				if err := rows.Scan(&id, &name, &b, &sm); err != nil {
					t.Fatal(err)
				}
				got = append(got, [4]any{id, name, b, sm})
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return got
		}
		got := read(t.Context(), []string{"a", "b", "c"}, []string{`it's "x"`, "", "日本"}, []int64{1 << 40, -1, 0}, []int{7, 8, 9})
		want := [][4]any{{"a", `it's "x"`, int64(1 << 40), 7}, {"b", "", int64(-1), 8}, {"c", "日本", int64(0), 9}}
		if !slices.Equal(got, want) {
			t.Errorf("rows = %v, want %v", got, want)
		}
		if got := read(t.Context(), nil, nil, nil, nil); len(got) != 0 {
			t.Errorf("no rows = %v, want none", got)
		}
	})
}

// The statements that lock and queue a dispatch's chunks look each chunk
// up by its id, not down the index of the tasks' status, which walks
// every waiting chunk of the farm's backlog (SQLite's plan; PostgreSQL's
// is checked in docs/performance.md).
func TestADispatchsChunksAreLookedUpByTheirIds(t *testing.T) {
	t.Parallel()
	s := openSQLiteForTest(t)
	q := s.Queries
	tests := []struct {
		name  string
		query string
		args  []any
	}{
		{"LockWaitingChunks", q.lockWaitingChunksQuery(), []any{TaskWaiting, list(q.dialect, []string{"a", "b"})}},
		{"QueueChunks", q.queueChunksQuery(), []any{TaskQueued, now(), now(), list(q.dialect, []string{"a"}), list(q.dialect, []string{"w"}),
			list(q.dialect, []int64{1}), list(q.dialect, []int{1}), TaskWaiting}},
	}
	for _, tt := range tests {
		plan := sqlitePlan(t, s, tt.query, tt.args...)
		byID := false
		for _, step := range plan {
			if strings.Contains(step, "tasks_by_status") {
				t.Errorf("%s walks the index of the tasks' status: %q", tt.name, plan)
			}
			byID = byID || strings.HasPrefix(step, "SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 (id=?)")
		}
		if !byID {
			t.Errorf("%s does not look the tasks up by their ids: %q", tt.name, plan)
		}
	}
}

// The jobs whose logs are to be counted are found through the index that
// holds only them, not by reading every job the farm ever rendered.
func TestJobsWithLogsToCountReadOnlyTheirIndex(t *testing.T) {
	t.Parallel()
	s := openSQLiteForTest(t)
	plan := sqlitePlan(t, s, jobsWithLogsToCountQuery, append(append([]any{""}, endedJobStatuses...), 100)...)
	if len(plan) != 1 || !strings.HasPrefix(plan[0], "SEARCH jobs USING INDEX jobs_logs_to_count") {
		t.Errorf("plan %q; want one search of jobs_logs_to_count", plan)
	}
}

// The requirements a node offers are one list parameter, and the
// workspaces with chunks waiting for them are still found down the index
// of the waiting chunks, by workspace and requirements.
func TestWaitingSharesSearchTheWaitingChunksByTheirRequirements(t *testing.T) {
	t.Parallel()
	s := openSQLiteForTest(t)
	q := s.Queries
	plan := sqlitePlan(t, s, q.waitingSharesQuery(), "2026-12", list(q.dialect, []string{"a", "b"}), now())
	if !slices.ContainsFunc(plan, func(step string) bool {
		return strings.HasPrefix(step, "SEARCH t EXISTS USING INDEX tasks_waiting (workspace_id=? AND requirements=?)")
	}) {
		t.Errorf("plan %q; want the waiting chunks searched by workspace and requirements", plan)
	}
}

// sqlitePlan is the steps of SQLite's plan for query with args (EXPLAIN
// QUERY PLAN's detail column), in order.
func sqlitePlan(t *testing.T, s *Store, query string, args ...any) []string {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
