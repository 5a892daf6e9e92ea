package blender

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event, in the order they usually come for a frame.
const (
	// FrameStarted: Blender began rendering Frame.
	FrameStarted EventKind = iota + 1
	// SampleProgress: Frame has reached Sample of Samples.
	SampleProgress
	// FrameSaved: Frame was written to Path, RenderSeconds after it started.
	FrameSaved
	// ErrorLine: Blender (or Python) reported an error; Line holds it.
	ErrorLine
)

var kindNames = map[EventKind]string{
	FrameStarted:   "FrameStarted",
	SampleProgress: "SampleProgress",
	FrameSaved:     "FrameSaved",
	ErrorLine:      "ErrorLine",
}

func (k EventKind) String() string {
	if name, ok := kindNames[k]; ok {
		return name
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MarshalText makes kinds readable in golden files and logs.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (k *EventKind) UnmarshalText(b []byte) error {
	for kind, name := range kindNames {
		if name == string(b) {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("blender: unknown event kind %q", b)
}

// Event is something Blender reported while rendering, as the farm needs it
// for progress: which frame is rendering, how far along it is, which file it
// saved and how long it took, and what went wrong.
type Event struct {
	Kind  EventKind `json:"kind"`
	Frame int       `json:"frame"`
	// Sample and Samples are set for SampleProgress.
	Sample  int `json:"sample,omitempty"`
	Samples int `json:"samples,omitempty"`
	// Path and RenderSeconds are set for FrameSaved. RenderSeconds is the
	// frame's wall time as Blender reports it, saving included.
	Path          string  `json:"path,omitempty"`
	RenderSeconds float64 `json:"renderSeconds,omitempty"`
	// Line is the error for ErrorLine: the whole line, trimmed.
	Line string `json:"line,omitempty"`
}

// Lines of Blender 3.4, matched loosely enough for 4.x and 5.x, which add
// prefixes to some lines and keep the rest.
var (
	// "Fra:1 Mem:12.77M (Peak 14.53M) | Time:00:01.02 | … | Sample 16/16"
	fraRe     = regexp.MustCompile(`(?:^|[\s|])Fra:\s*(-?\d+)\b`)
	fraTimeRe = regexp.MustCompile(`\|\s*Time:\s*([\d:.]+)`)
	// Cycles: "Sample 16/16" (older: "Path Tracing Tile 1/16, Sample 10/10").
	cyclesSampleRe = regexp.MustCompile(`\bSample\s+(\d+)\s*/\s*(\d+)`)
	// EEVEE: "Rendering 26 / 64 samples".
	eeveeSampleRe = regexp.MustCompile(`\bRendering\s+(\d+)\s*/\s*(\d+)\s+samples`)
	// "Saved: '/out/frame_0001.png'"
	savedRe = regexp.MustCompile(`(?:^|[\s|])Saved:\s*['"](.+)['"]\s*$`)
	// " Time: 00:01.05 (Saving: 00:00.02)"
	frameTimeRe = regexp.MustCompile(`(?:^|[\s|])Time:\s*([\d:.]+)\s*\(Saving:`)
	// Printed by render_settings.py before each frame: Workbench prints no
	// "Fra:" lines at all.
	markerRe = regexp.MustCompile(`^renderfarm: rendering frame (-?\d+)$`)
	// "Error: …" at the start of a line or of a "|" field, and the upper-case
	// ERROR of the log format of newer Blender releases.
	errorRe = regexp.MustCompile(`(?:^|\|\s*)Error:\s*\S|(?:^|[\s|])ERROR\b`)
	// Python's "Traceback (most recent call last):", possibly after
	// Blender's "Error: Python: ".
	tracebackRe = regexp.MustCompile(`Traceback \(most recent call last\):`)
	// The frame in a file name of ours: frame_0001.png, frame_0001_L.png
	// (stereo). It is the surest attribution of a saved file.
	ourFileRe = regexp.MustCompile(`(?:^|[/\\])frame_(\d+)(?:_[^/\\.]*)?\.[^/\\.]+$`)
	// A digit run in any other file name, for when no frame was announced.
	fileFrameRe = regexp.MustCompile(`(\d+)\D*$`)
)

// Parser turns Blender's output, fed one line at a time, into Events. It
// holds no I/O so it can be tested on captured logs; a Parser is for one
// Blender process and is not safe for concurrent use.
type Parser struct {
	frame     int
	haveFrame bool
	sample    int
	samples   int
	fraTime   float64 // elapsed time of the current frame from "Fra:" lines
	// A "Saved:" line is reported once its " Time:" line, which follows it,
	// gives the frame's time.
	pending     *Event
	inTraceback bool
}

// Feed parses one line (without its line ending) and returns the events it
// completes, possibly none.
func (p *Parser) Feed(line string) []Event {
	var out []Event
	if p.pending != nil {
		ev := *p.pending
		p.pending = nil
		if m := frameTimeRe.FindStringSubmatch(line); m != nil {
			if secs, ok := parseClock(m[1]); ok {
				ev.RenderSeconds = secs
			}
			return append(out, ev)
		}
		out = append(out, ev)
	}

	if p.inTraceback {
		// The exception is the first line of the traceback that is neither
		// indented (frames, source, carets) nor blank.
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			return out
		}
		p.inTraceback = false
		return append(out, Event{Kind: ErrorLine, Frame: p.frame, Line: strings.TrimSpace(line)})
	}
	if tracebackRe.MatchString(line) {
		p.inTraceback = true
		return out
	}

	if m := markerRe.FindStringSubmatch(line); m != nil {
		frame, _ := strconv.Atoi(m[1])
		return append(out, p.startFrame(frame)...)
	}
	if m := savedRe.FindStringSubmatch(line); m != nil {
		frame := p.frame
		if n, ok := ourFileFrame(m[1]); ok {
			frame = n
		} else if !p.haveFrame {
			frame = frameFromPath(m[1])
		}
		p.pending = &Event{Kind: FrameSaved, Frame: frame, Path: m[1], RenderSeconds: p.fraTime}
		return out
	}
	if m := fraRe.FindStringSubmatch(line); m != nil {
		frame, _ := strconv.Atoi(m[1])
		if !p.haveFrame || frame != p.frame {
			out = append(out, p.startFrame(frame)...)
		}
		if t := fraTimeRe.FindStringSubmatch(line); t != nil {
			if secs, ok := parseClock(t[1]); ok {
				p.fraTime = secs
			}
		}
		sm := cyclesSampleRe.FindStringSubmatch(line)
		if sm == nil {
			sm = eeveeSampleRe.FindStringSubmatch(line)
		}
		if sm != nil {
			sample, _ := strconv.Atoi(sm[1])
			samples, _ := strconv.Atoi(sm[2])
			if sample != p.sample || samples != p.samples {
				p.sample, p.samples = sample, samples
				out = append(out, Event{Kind: SampleProgress, Frame: p.frame, Sample: sample, Samples: samples})
			}
		}
		// A status field can carry an error ("… | Error: …") in newer releases.
		if errorRe.MatchString(line) {
			out = append(out, Event{Kind: ErrorLine, Frame: p.frame, Line: strings.TrimSpace(line)})
		}
		return out
	}
	if errorRe.MatchString(line) {
		out = append(out, Event{Kind: ErrorLine, Frame: p.frame, Line: strings.TrimSpace(line)})
	}
	return out
}

// Flush returns what is still held back once the output has ended: a saved
// frame whose time line never came.
func (p *Parser) Flush() []Event {
	if p.pending == nil {
		return nil
	}
	ev := *p.pending
	p.pending = nil
	return []Event{ev}
}

// startFrame begins frame. Our marker always does; a "Fra:" line only when
// its frame differs, so a marker followed by "Fra:" lines starts it once.
func (p *Parser) startFrame(frame int) []Event {
	p.frame, p.haveFrame = frame, true
	p.sample, p.samples, p.fraTime = 0, 0, 0
	return []Event{{Kind: FrameStarted, Frame: frame}}
}

// ourFileFrame reads the frame from a file named the way Render names them.
func ourFileFrame(path string) (int, bool) {
	m := ourFileRe.FindStringSubmatch(path)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// frameFromPath guesses the frame from the last number in a file name.
func frameFromPath(path string) int {
	name := path[strings.LastIndexAny(path, `/\`)+1:]
	if m := fileFrameRe.FindStringSubmatch(name); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil {
			return n
		}
	}
	return 0
}

// parseClock reads Blender's "MM:SS.cc" or "HH:MM:SS.cc" into seconds.
func parseClock(s string) (float64, bool) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	var total float64
	for i, part := range parts {
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || v < 0 {
			return 0, false
		}
		if i < len(parts)-1 && strings.Contains(part, ".") {
			return 0, false
		}
		total = total*60 + v
	}
	return total, true
}
