package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/renderfarm/renderfarm/client"
)

// console is where a client command writes. A person at a terminal gets
// progress bars and coloured warnings; a log file or a CI job gets one
// plain line per change with no control characters, because escape codes
// and carriage returns turn a log into noise. With --json, stdout carries
// the result as JSON and nothing else, and everything meant for a person
// moves to stderr, so that `renderfarm jobs --json | jq` always works.
type console struct {
	stdout io.Writer
	stderr io.Writer
	json   bool
	// live is set when stderr, where progress goes, is a terminal.
	live bool
	// color is set when the text a person reads goes to a terminal that
	// accepts colour.
	color bool
}

func newConsole(stdout, stderr io.Writer, jsonOut bool) *console {
	c := &console{stdout: stdout, stderr: stderr, json: jsonOut, live: isTerminal(stderr)}
	_, noColor := os.LookupEnv("NO_COLOR")
	c.color = !noColor && isTerminal(c.text())
	return c
}

// isTerminal reports whether w is a terminal that understands cursor
// movement. TERM=dumb is what editors' and CI's pseudo-terminals set to ask
// for plain output.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// Text from a job, a file or the farm (a scene's or camera's name, a path,
// a warning, a failure's reason, Blender's words) is hostile: Blender
// takes any character in a name, and a .blend may come from anyone. Raw,
// an escape code in it would drive the terminal of whoever reads the
// output: clear the screen, set the window's title, set the clipboard
// (OSC 52), colour or hide text; a newline or a carriage return would
// forge a line of output, a bidi override reorder what a line seems to
// say. So such text is printed with those characters made visible, the
// way Go writes them in a quoted string (\x1b, \n, \u202e) but without
// the quotes, and a name without them prints as it is. A backslash stays
// as it is, so that Windows paths read as usual: the output is for reading,
// not for parsing back (--json gives the exact values).

// escapeText returns s with every character that would drive a terminal
// escaped: the C0 controls (tab and newline too), DEL, the C1 controls,
// the bidi marks, embeddings, overrides and isolates (U+061C, U+200E,
// U+200F, U+202A–U+202E, U+2066–U+2069), and bytes that are not UTF-8,
// since a terminal in an 8-bit mode reads a lone 0x9b as a CSI.
func escapeText(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if mustEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !mustEscape(r, size):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < utf8.RuneSelf:
			b.WriteString(asciiEscape(byte(r)))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// escapeLines is escapeText for text of several lines, such as an error
// whose message the command wrote over two lines: its newlines stay, and
// everything else escapeText escapes is escaped in each line.
func escapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		lines[i] = escapeText(line)
	}
	return strings.Join(lines, "\n")
}

// mustEscape reports whether the rune r, of size bytes, is escaped.
func mustEscape(r rune, size int) bool {
	switch {
	case r == utf8.RuneError:
		return size == 1 // a byte that is not UTF-8; U+FFFD itself is text
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	}
	return isBidiControl(r)
}

// isBidiControl reports whether r reorders or redirects the text around
// it: the marks, embeddings, overrides and isolates of the Unicode bidi
// algorithm.
func isBidiControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// asciiEscape is how Go's quoted strings write an ASCII control.
func asciiEscape(c byte) string {
	switch c {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	}
	return fmt.Sprintf(`\x%02x`, c)
}

// escapeJSON writes the characters escapeText escapes that encoding/json
// leaves as they are (DEL, the C1 controls, the bidi controls) as \u
// escapes. JSON has such characters nowhere but inside strings, where
// the escape means the same character.
func escapeJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && r >= 0x7f && mustEscape(r, size) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	if out == nil {
		return b
	}
	return out
}

// verbatim is text the command composed itself, whose characters are
// meant, passed to printf or fprintf to be printed as it is.
type verbatim string

// escaped is an argument of printf or fprintf, printed as its verb,
// flags and precision format it, then escaped, then padded to its width,
// so that columns line up on what is printed: a string, an error, a
// fmt.Stringer or a slice of them alike.
type escaped struct{ v any }

func (e escaped) Format(f fmt.State, verb rune) {
	directive := "%"
	for _, flag := range "+# " {
		if f.Flag(int(flag)) {
			directive += string(flag)
		}
	}
	if p, ok := f.Precision(); ok {
		directive += "." + strconv.Itoa(p)
	}
	s := escapeText(fmt.Sprintf(directive+string(verb), e.v))
	if w, ok := f.Width(); ok {
		if n := w - utf8.RuneCountInString(s); n > 0 {
			pad := " "
			if f.Flag('0') && !f.Flag('-') {
				pad = "0"
			}
			if f.Flag('-') {
				s += strings.Repeat(" ", n)
			} else {
				s = strings.Repeat(pad, n) + s
			}
		}
	}
	io.WriteString(f, s)
}

// escapeArgs wraps every argument but numbers, booleans and verbatim
// text so that it is printed escaped. It wraps them in place: fprintf and
// sprintf then hand their own args on to fmt unchanged in name, which is
// what go vet's printf check needs to see them (and printf) as wrappers of
// fmt and check every format string of the commands against its
// arguments.
func escapeArgs(args []any) {
	for i, a := range args {
		switch a := a.(type) {
		case verbatim:
			args[i] = string(a)
		case escaped, nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		default:
			args[i] = escaped{a}
		}
	}
}

// fprintf is fmt.Fprintf with every argument escaped (escapeArgs): the way
// to print a line with names from a job, a file or the farm anywhere, a
// tabwriter's rows too, where a tab in a name would also shift columns.
func fprintf(w io.Writer, format string, args ...any) {
	escapeArgs(args)
	fmt.Fprintf(w, format, args...)
}

// sprintf is fmt.Sprintf with every argument escaped, for a piece of a
// line built before it is printed.
func sprintf(format string, args ...any) string {
	escapeArgs(args)
	return fmt.Sprintf(format, args...)
}

// text is where reports meant for a person go.
func (c *console) text() io.Writer {
	if c.json {
		return c.stderr
	}
	return c.stdout
}

// printf prints a report for a person. The format is the command's own
// text and goes out as written; every argument is printed escaped
// (escapeText), since names, paths and messages come from a job, a file or
// the farm. A piece the command composed itself is passed as verbatim.
func (c *console) printf(format string, args ...any) {
	fprintf(c.text(), format, args...)
}

// warn prints a warning so that it stands out from the report around it:
// in bold yellow on a terminal, in capitals in a log. Both the code and the
// message come from the farm's analysis, and are escaped.
func (c *console) warn(code, message string) {
	if c.color {
		c.printf("\x1b[1;33mwarning %s\x1b[0m: %s\n", code, message)
		return
	}
	c.printf("WARNING %s: %s\n", code, message)
}

// result prints v as the command's JSON result on stdout. It does nothing
// without --json, so that commands can call it unconditionally.
func (c *console) result(v any) error {
	if !c.json {
		return nil
	}
	return writeJSON(c.stdout, v)
}

// writeJSON prints v as indented JSON. encoding/json already escapes the
// C0 controls; the other characters escapeText escapes are written as
// \u escapes too, which JSON reads back as the same string, so that a
// name in --json output cannot drive a terminal either.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(escapeJSON(buf.Bytes()))
	return err
}

// uploadMeter shows an upload: a bar with bytes, rate and time left on a
// terminal, or a line at every tenth of the file elsewhere. report is
// shaped for [client.Client.UploadFile] and may be called from another
// goroutine; done ends the display whether or not the upload succeeded.
func (c *console) uploadMeter(name string) (report func(sent, total int64), done func()) {
	var (
		mu     sync.Mutex
		bar    *progressbar.ProgressBar
		decile = -1
	)
	report = func(sent, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if c.live {
			if bar == nil && total > 0 {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(c.stderr),
					progressbar.OptionSetDescription("uploading "+escapeText(name)),
					progressbar.OptionShowBytes(true),
					progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.stderr) }),
				)
			}
			if bar != nil {
				_ = bar.Set64(sent)
			}
			return
		}
		percent := 100
		if total > 0 {
			percent = int(sent * 100 / total)
		}
		if d := percent / 10; d > decile {
			decile = d
			fprintf(c.stderr, "uploading %s: %d%% (%s of %s)\n", name, percent, formatBytes(sent), formatBytes(total))
		}
	}
	done = func() {
		mu.Lock()
		defer mu.Unlock()
		if bar != nil && !bar.IsFinished() {
			_ = bar.Exit()
		}
	}
	return report, done
}

// renderMeter shows a job's render: a bar of frames done with the farm's
// estimate of the time left on a terminal, or a line whenever something
// changed elsewhere. report is shaped for [client.Client.Wait].
func (c *console) renderMeter() (report func(*client.Progress), done func()) {
	if !c.live {
		last := ""
		report = client.ProgressChanges(func(p *client.Progress) {
			if line := progressLine(p); line != last {
				last = line
				fprintf(c.stderr, "%s\n", line)
			}
		})
		return report, func() {}
	}

	var bar *progressbar.ProgressBar
	report = func(p *client.Progress) {
		if p.FramesTotal <= 0 {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions(p.FramesTotal,
				progressbar.OptionSetWriter(c.stderr),
				progressbar.OptionShowCount(),
				progressbar.OptionSetItsString("frames"),
				// The farm knows better than the bar how long frames
				// take: it has their render times.
				progressbar.OptionSetPredictTime(false),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.stderr) }),
			)
		}
		if bar.IsFinished() {
			// All frames are in; a finished bar redrawn would print a
			// second copy of itself after its final line.
			return
		}
		if bar.GetMax() != p.FramesTotal {
			bar.ChangeMax(p.FramesTotal)
		}
		desc := sprintf("%s", p.Status)
		if p.FramesFailed > 0 {
			desc += fmt.Sprintf(", %d failed", p.FramesFailed)
		}
		if p.EtaSeconds != nil {
			desc += ", eta " + formatSeconds(*p.EtaSeconds)
		}
		if p.WaitingFor != "" {
			desc += sprintf(", waiting for %s", p.WaitingFor)
		}
		bar.Describe(desc)
		// Setting the same count again still redraws the bar, which keeps
		// its elapsed time moving during a long frame.
		_ = bar.Set(p.FramesCompleted)
	}
	done = func() {
		if bar != nil && !bar.IsFinished() {
			_ = bar.Exit()
		}
	}
	return report, done
}

// progressLine is a job's progress as one line of a log, such as
// "rendering: 12/24 frames, eta 8s", escaped.
func progressLine(p *client.Progress) string {
	return sprintf("%s: %s", p.Status, verbatim(progressCounts(p)))
}

// progressCounts is a job's progress without its status, escaped: "12/24
// frames, eta 8s".
func progressCounts(p *client.Progress) string {
	line := fmt.Sprintf("%d/%d frames", p.FramesCompleted, p.FramesTotal)
	if p.FramesFailed > 0 {
		line += fmt.Sprintf(", %d failed", p.FramesFailed)
	}
	if p.EtaSeconds != nil {
		line += ", eta " + formatSeconds(*p.EtaSeconds)
	}
	if p.WaitingFor != "" {
		line += sprintf(", waiting for %s", p.WaitingFor)
	}
	return line
}

// countMeter shows work counted in items, such as files downloaded: a bar
// on a terminal, nothing elsewhere, where the caller prints a line per
// item itself.
func (c *console) countMeter(total int, what string) (step func(), done func()) {
	if !c.live || total <= 0 {
		return func() {}, func() {}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(c.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.stderr) }),
	)
	step = func() { _ = bar.Add(1) }
	done = func() {
		if !bar.IsFinished() {
			_ = bar.Exit()
		}
	}
	return step, done
}

// formatBytes writes a size the way file managers do, in powers of 1000:
// "980 B", "1.2 MB".
func formatBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		v /= 1000
		if v < 999.95 || unit == "TB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	panic("unreachable")
}

// formatSeconds writes a duration as short as it can be read: "8s",
// "2m05s", "1h30m".
func formatSeconds(s float64) string {
	total := int(math.Round(s))
	switch {
	case total < 60:
		return fmt.Sprintf("%ds", max(total, 0))
	case total < 3600:
		return fmt.Sprintf("%dm%02ds", total/60, total%60)
	default:
		return fmt.Sprintf("%dh%02dm", total/3600, total%3600/60)
	}
}
