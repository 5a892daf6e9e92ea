package blender

import (
	"crypto/subtle"
	"fmt"
	"regexp"
	"slices"
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
	// FrameSaved: Frame's file is written; the farm took it from Path.
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
//
// Only FrameStarted and FrameSaved steer the farm, and they come from lines
// the farm's own script prints with the command's nonce, which nothing the
// .blend makes Blender print can carry; SampleProgress and ErrorLine come
// from Blender's own lines and are information only.
type Event struct {
	Kind  EventKind `json:"kind"`
	Frame int       `json:"frame"`
	// Sample and Samples are set for SampleProgress.
	Sample  int `json:"sample,omitempty"`
	Samples int `json:"samples,omitempty"`
	// Path, RenderSeconds, Image and Outputs are set for FrameSaved. Path
	// is where the farm took the frame from: the chunk's output directory,
	// under the name it gave Blender for the frame. RenderSeconds is the
	// frame's wall time, saving included, as the farm's script measured
	// it. Image is the frame's checked image (its first view's, in a
	// multiview scene) and Outputs every other file the frame made (its
	// other views, the compositor's File Output nodes' images, the preview
	// proxy), open while the event is handled.
	Path          string        `json:"path,omitempty"`
	RenderSeconds float64       `json:"renderSeconds,omitempty"`
	Image         *FrameImage   `json:"-"`
	Outputs       []*FrameImage `json:"-"`
	// Line is the error for ErrorLine: the whole line, trimmed.
	Line string `json:"line,omitempty"`
}

// closeImages closes the files a FrameSaved event carries.
func (ev *Event) closeImages() {
	if ev.Image != nil {
		ev.Image.close()
	}
	for _, img := range ev.Outputs {
		img.close()
	}
}

// Lines of Blender 3.4, matched loosely enough for 4.x and 5.x, which add
// prefixes to some lines and keep the rest.
var (
	// "Fra:1 Mem:12.77M (Peak 14.53M) | Time:00:01.02 | … | Sample 16/16"
	fraRe = regexp.MustCompile(`(?:^|[\s|])Fra:\s*(-?\d+)\b`)
	// Cycles: "Sample 16/16" (older: "Path Tracing Tile 1/16, Sample 10/10").
	cyclesSampleRe = regexp.MustCompile(`\bSample\s+(\d+)\s*/\s*(\d+)`)
	// EEVEE: "Rendering 26 / 64 samples".
	eeveeSampleRe = regexp.MustCompile(`\bRendering\s+(\d+)\s*/\s*(\d+)\s+samples`)
	// "Error: …" at the start of a line or of a "|" field, and the upper-case
	// ERROR of the log format of newer Blender releases.
	errorRe = regexp.MustCompile(`(?:^|\|\s*)Error:\s*\S|(?:^|[\s|])ERROR\b`)
	// Python's "Traceback (most recent call last):", possibly after
	// Blender's "Error: Python: ".
	tracebackRe = regexp.MustCompile(`Traceback \(most recent call last\):`)
	// A token of the output format session.py reports: PNG, OPEN_EXR, J2K.
	formatTokenRe = regexp.MustCompile(`^[A-Z0-9_]{1,32}$`)
)

// signalPrefix starts the lines session.py prints for the worker:
//
//	renderfarm-session NONCE frame F          frame F begins
//	renderfarm-session NONCE saved F SECONDS  frame F's file is written
//	renderfarm-session NONCE output FORMAT CODEC
//	renderfarm-session NONCE ok|failed        the command has ended
//
// NONCE is the command's, sent on Blender's stdin: the .blend never sees it.
// A line counts by its end, where the script's print lands even when
// Blender left a line unfinished.
const signalPrefix = "renderfarm-session "

// maxRenderSeconds bounds a frame time read from a signal line (a year).
const maxRenderSeconds = 365 * 24 * 3600

// Parser turns Blender's output, fed one line at a time, into Events. It
// holds no I/O so it can be tested on captured logs; a Parser is for one
// Blender process and is not safe for concurrent use.
type Parser struct {
	// Nonce is the secret of the command under way. Only lines carrying it
	// start or save a frame; "" trusts no line.
	Nonce string
	// Frames are the chunk's frames: a line about another one is ignored.
	Frames []int

	frame     int
	haveFrame bool
	sample    int
	samples   int
	// output is what the settings script reported of the output format
	// ("PNG JP2"); "" until it has.
	output      string
	inTraceback bool
}

// Feed parses one line (without its line ending) and returns the events it
// completes, possibly none.
func (p *Parser) Feed(line string) []Event {
	if p.inTraceback {
		// The exception is the first line of the traceback that is neither
		// indented (frames, source, carets) nor blank.
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			return nil
		}
		p.inTraceback = false
		return []Event{{Kind: ErrorLine, Frame: p.frame, Line: strings.TrimSpace(line)}}
	}
	if tracebackRe.MatchString(line) {
		p.inTraceback = true
		return nil
	}
	if kind, args, ok := p.signal(line); ok {
		return p.signalled(kind, args)
	}
	if m := fraRe.FindStringSubmatch(line); m != nil {
		var out []Event
		// Blender's "Fra:" names the frame it renders; a line for any other
		// than the one the script began is not about this render.
		if frame, err := strconv.Atoi(m[1]); err == nil && p.haveFrame && frame == p.frame {
			sm := cyclesSampleRe.FindStringSubmatch(line)
			if sm == nil {
				sm = eeveeSampleRe.FindStringSubmatch(line)
			}
			if sm != nil {
				sample, err1 := strconv.Atoi(sm[1])
				samples, err2 := strconv.Atoi(sm[2])
				if err1 == nil && err2 == nil && (sample != p.sample || samples != p.samples) {
					p.sample, p.samples = sample, samples
					out = append(out, Event{Kind: SampleProgress, Frame: p.frame, Sample: sample, Samples: samples})
				}
			}
		}
		// A status field can carry an error ("… | Error: …") in newer releases.
		if errorRe.MatchString(line) {
			out = append(out, Event{Kind: ErrorLine, Frame: p.frame, Line: strings.TrimSpace(line)})
		}
		return out
	}
	if errorRe.MatchString(line) {
		return []Event{{Kind: ErrorLine, Frame: p.frame, Line: strings.TrimSpace(line)}}
	}
	return nil
}

// signal reads a line of session.py's carrying the nonce: its kind and
// arguments.
func (p *Parser) signal(line string) (kind string, args []string, ok bool) {
	i := strings.LastIndex(line, signalPrefix)
	if i < 0 || p.Nonce == "" {
		return "", nil, false
	}
	fields := strings.Fields(line[i+len(signalPrefix):])
	if len(fields) < 2 || subtle.ConstantTimeCompare([]byte(fields[0]), []byte(p.Nonce)) != 1 {
		return "", nil, false
	}
	return fields[1], fields[2:], true
}

// signalled turns a signal into events.
func (p *Parser) signalled(kind string, args []string) []Event {
	switch kind {
	case "frame":
		if frame, ok := p.chunkFrame(args); ok && len(args) == 1 {
			return p.startFrame(frame)
		}
	case "saved":
		if frame, ok := p.chunkFrame(args); ok && len(args) == 2 {
			secs, err := strconv.ParseFloat(args[1], 64)
			if err != nil || !(secs >= 0 && secs <= maxRenderSeconds) {
				secs = 0
			}
			return []Event{{Kind: FrameSaved, Frame: frame, RenderSeconds: secs}}
		}
	case "output":
		if len(args) >= 1 && len(args) <= 2 && slices.IndexFunc(args, func(a string) bool { return !formatTokenRe.MatchString(a) }) < 0 {
			p.output = strings.Join(args, " ")
		}
	}
	return nil
}

// chunkFrame reads args[0] as a frame of the chunk.
func (p *Parser) chunkFrame(args []string) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	frame, err := strconv.Atoi(args[0])
	if err != nil || !slices.Contains(p.Frames, frame) {
		return 0, false
	}
	return frame, true
}

// startFrame begins frame.
func (p *Parser) startFrame(frame int) []Event {
	p.frame, p.haveFrame = frame, true
	p.sample, p.samples = 0, 0
	return []Event{{Kind: FrameStarted, Frame: frame}}
}
