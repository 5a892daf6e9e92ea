package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

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

// text is where reports meant for a person go.
func (c *console) text() io.Writer {
	if c.json {
		return c.stderr
	}
	return c.stdout
}

func (c *console) printf(format string, args ...any) {
	fmt.Fprintf(c.text(), format, args...)
}

// warn prints a warning so that it stands out from the report around it:
// in bold yellow on a terminal, in capitals in a log.
func (c *console) warn(code, message string) {
	if c.color {
		fmt.Fprintf(c.text(), "\x1b[1;33mwarning %s\x1b[0m: %s\n", code, message)
		return
	}
	fmt.Fprintf(c.text(), "WARNING %s: %s\n", code, message)
}

// result prints v as the command's JSON result on stdout. It does nothing
// without --json, so that commands can call it unconditionally.
func (c *console) result(v any) error {
	if !c.json {
		return nil
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
					progressbar.OptionSetDescription("uploading "+name),
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
			fmt.Fprintf(c.stderr, "uploading %s: %d%% (%s of %s)\n", name, percent, formatBytes(sent), formatBytes(total))
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
				fmt.Fprintln(c.stderr, line)
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
		desc := string(p.Status)
		if p.FramesFailed > 0 {
			desc += fmt.Sprintf(", %d failed", p.FramesFailed)
		}
		if p.EtaSeconds != nil {
			desc += ", eta " + formatSeconds(*p.EtaSeconds)
		}
		if p.WaitingFor != "" {
			desc += ", waiting for " + p.WaitingFor
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
// "rendering: 12/24 frames, eta 8s".
func progressLine(p *client.Progress) string {
	line := fmt.Sprintf("%s: %d/%d frames", p.Status, p.FramesCompleted, p.FramesTotal)
	if p.FramesFailed > 0 {
		line += fmt.Sprintf(", %d failed", p.FramesFailed)
	}
	if p.EtaSeconds != nil {
		line += ", eta " + formatSeconds(*p.EtaSeconds)
	}
	if p.WaitingFor != "" {
		line += ", waiting for " + p.WaitingFor
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
