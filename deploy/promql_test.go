package deploy_test

import (
	"slices"
	"strings"
	"unicode"
)

// promqlKeywords are the words of PromQL that are not metric names.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "inf": true, "nan": true,
}

// metricNames lists the metric names a PromQL expression selects: every
// name that is not a function or aggregation (followed by "("), a
// keyword, a label inside {…} or a grouping list, a duration inside […],
// or text inside quotes. Grafana's variables ($datasource, $__rate_interval)
// are skipped with the "$".
func metricNames(expr string) []string {
	var names []string
	runes := []rune(expr)
	inBraces, inBrackets, inGrouping := 0, 0, false
	lastWord := ""
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			// Skip the quoted text, honouring backslash escapes.
			for i++; i < len(runes) && runes[i] != r; i++ {
				if runes[i] == '\\' {
					i++
				}
			}
		case r == '{':
			inBraces++
		case r == '}':
			inBraces--
		case r == '[':
			inBrackets++
		case r == ']':
			inBrackets--
		case r == '(':
			inGrouping = lastWord == "by" || lastWord == "without" || lastWord == "on" || lastWord == "ignoring" ||
				lastWord == "group_left" || lastWord == "group_right"
			lastWord = ""
		case r == ')':
			inGrouping = false
		case r == '$':
			// A Grafana variable: skip its name.
			for i+1 < len(runes) && (isNameRune(runes[i+1]) || runes[i+1] == '{') {
				i++
			}
		case unicode.IsDigit(r):
			// A number or a duration, never a name.
			for i+1 < len(runes) && (isNameRune(runes[i+1]) || runes[i+1] == '.') {
				i++
			}
		case isNameStart(r):
			start := i
			for i+1 < len(runes) && isNameRune(runes[i+1]) {
				i++
			}
			word := string(runes[start : i+1])
			lastWord = word
			if inBraces > 0 || inBrackets > 0 || inGrouping || promqlKeywords[strings.ToLower(word)] {
				continue
			}
			next := i + 1
			for next < len(runes) && unicode.IsSpace(runes[next]) {
				next++
			}
			if next < len(runes) && runes[next] == '(' {
				continue // a function or an aggregation
			}
			if rest := string(runes[next:]); strings.HasPrefix(rest, "by") || strings.HasPrefix(rest, "without") {
				continue // an aggregation with its grouping first: sum by (le) (…)
			}
			if !slices.Contains(names, word) {
				names = append(names, word)
			}
		}
	}
	return names
}

func isNameStart(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
func isNameRune(r rune) bool  { return isNameStart(r) || unicode.IsDigit(r) }
