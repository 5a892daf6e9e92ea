package store

import (
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
