package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dialect is the SQL database a store runs on.
type Dialect string

// The databases the farm runs on.
const (
	// DialectSQLite is the embedded shape: one file under --data-dir.
	DialectSQLite Dialect = "sqlite"
	// DialectPostgres is the distributed shape: API replicas and render
	// nodes on one PostgreSQL database.
	DialectPostgres Dialect = "postgres"
)

// rebind turns a query written with ? placeholders into the dialect's own.
func (d Dialect) rebind(query string) string {
	if d == DialectPostgres {
		return rebindNumbered(query)
	}
	return query
}

// rowLock is the clause that makes a SELECT lock the rows it reads until
// the transaction ends, such as FOR NO KEY UPDATE or FOR SHARE, on
// PostgreSQL. SQLite has no row locks and needs none: its transactions
// take the database's write lock when they begin (_txlock=immediate), so
// they run one at a time.
func (d Dialect) rowLock(clause string) string {
	if d == DialectPostgres {
		return " " + clause
	}
	return ""
}

// A list in a statement is one parameter, whatever its length: oneOf
// and noneOf are the conditions on a column, and list the argument that
// carries the values. With a placeholder per value, each length is a
// statement text of its own, and PostgreSQL's driver prepares each text
// on each connection the first time it sees it (pgx's statement cache):
// a dispatch, whose lists are the chunks it gives, paid a round trip
// more for a length its connection had not met yet, under the
// dispatcher's lock. On PostgreSQL the list is an array; SQLite has
// none, and reads a JSON array (json_each).

// oneOf is the condition that column holds one of the values of a list
// (list).
func (d Dialect) oneOf(column string) string {
	if d == DialectPostgres {
		return column + " = ANY(?)"
	}
	return column + " IN (SELECT value FROM json_each(?))"
}

// noneOf is the condition that column holds none of the values of a list
// (list); an empty list holds none.
func (d Dialect) noneOf(column string) string {
	if d == DialectPostgres {
		return column + " <> ALL(?)"
	}
	return column + " NOT IN (SELECT value FROM json_each(?))"
}

// list is the argument that carries values for oneOf, noneOf or rows:
// an array on PostgreSQL, a JSON array on SQLite. No values is an empty
// list, never NULL (which no value is one of, nor none of).
func list[T string | int | int64](d Dialect, values []T) any {
	if values == nil {
		values = []T{}
	}
	if d == DialectPostgres {
		return values
	}
	b, err := json.Marshal(values)
	if err != nil {
		panic(err) // strings and integers always marshal
	}
	return string(b)
}

// rows is a table of lists of the same length, each bound as one
// parameter (list), its columns named and typed by columns ("id text",
// "generation integer"): the rows of a statement that writes many,
// whatever their number. Column i of row r is element r of list i.
func (d Dialect) rows(columns ...string) string {
	names := make([]string, len(columns))
	types := make([]string, len(columns))
	for i, c := range columns {
		names[i], types[i], _ = strings.Cut(c, " ")
	}
	var b strings.Builder
	if d == DialectPostgres {
		b.WriteString("(SELECT * FROM unnest(")
		for i, t := range types {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("CAST(? AS " + t + "[])")
		}
		b.WriteString(") AS r(" + strings.Join(names, ", ") + "))")
		return b.String()
	}
	// SQLite: the first list's elements, each with the element of the
	// same index in each other list (l1.v, l2.v, …, in the order of the
	// parameters).
	b.WriteString("(SELECT CAST(l0.value AS " + types[0] + ") AS " + names[0])
	for i := 1; i < len(names); i++ {
		fmt.Fprintf(&b, ", CAST(json_extract(l%d.v, '$[' || l0.key || ']') AS %s) AS %s", i, types[i], names[i])
	}
	b.WriteString(" FROM json_each(?) AS l0")
	for i := 1; i < len(names); i++ {
		fmt.Fprintf(&b, ", (SELECT ? AS v) AS l%d", i)
	}
	b.WriteString(")")
	return b.String()
}

// unindexed is column in a condition that must not lead SQLite's
// planner to an index of that column: beside a list of ids, it would
// rather walk the index of a column of few values (a task's status)
// through every row that has the value than look each id up by the
// primary key, which on a farm with a backlog of thousands of waiting
// chunks is thousands of rows for a dispatch of one. A unary + is
// SQLite's way to say so; PostgreSQL's planner needs no such hint, and
// takes the column as it is.
func (d Dialect) unindexed(column string) string {
	if d == DialectPostgres {
		return column
	}
	return "+" + column
}

// utcDay is the day (YYYY-MM-DD, UTC) of the time in column, as text,
// for grouping by day in SQL. PostgreSQL keeps a timestamptz as an
// instant and writes it in the session's time zone unless told which.
// SQLite keeps the text the driver wrote, Go's Time.String of a UTC time
// (writeArgs): "2026-12-03 23:59:59.9 +0000 UTC", whose first ten
// characters are the day.
func (d Dialect) utcDay(column string) string {
	if d == DialectPostgres {
		return "to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
	return "substr(" + column + ", 1, 10)"
}

// rebindNumbered rewrites the ? placeholders of a query as PostgreSQL's
// $1, $2, … in order. A ? inside a string literal ('…', a quote in it
// doubled), a quoted identifier ("…") or a comment (-- to the end of the
// line, /* … */) is text, not a placeholder, and stays as it is. The
// farm's queries use no E'…' or $$…$$ strings and no jsonb ? operators,
// which this does not recognise.
func rebindNumbered(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); {
		rest := query[i:]
		var skip int // bytes of text to copy as they are
		switch {
		case rest[0] == '\'' || rest[0] == '"':
			skip = quotedLen(rest)
		case strings.HasPrefix(rest, "--"):
			skip = strings.IndexByte(rest, '\n')
			if skip < 0 {
				skip = len(rest)
			}
		case strings.HasPrefix(rest, "/*"):
			skip = strings.Index(rest[2:], "*/")
			if skip < 0 {
				skip = len(rest)
			} else {
				skip += 4
			}
		case rest[0] == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
			continue
		default:
			skip = 1
		}
		b.WriteString(rest[:skip])
		i += skip
	}
	return b.String()
}

// quotedLen is the length of the quoted text at the start of s, quotes
// included; a doubled quote inside is one quote character. Unterminated
// text runs to the end.
func quotedLen(s string) int {
	quote := s[0]
	for i := 1; i < len(s); i++ {
		if s[i] != quote {
			continue
		}
		if i+1 < len(s) && s[i+1] == quote {
			i++ // '' or "" stands for one quote
			continue
		}
		return i + 1
	}
	return len(s)
}

// writeArgs makes every time the store writes UTC and whole microseconds,
// so both databases keep the same instant and return what they were
// given: PostgreSQL keeps microseconds (a nanosecond would be rounded
// away), and SQLite keeps the text it is sent, offset included, where a
// time in another zone would sort out of place against the rest.
func writeArgs(args []any) []any {
	var out []any
	for i, a := range args {
		t, ok := a.(time.Time)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = t.UTC().Truncate(time.Microsecond)
	}
	if out == nil {
		return args
	}
	return out
}

// now is the moment to stamp a row with, as it will read back.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
