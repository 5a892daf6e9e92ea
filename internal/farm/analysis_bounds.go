package farm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The bounds of a job's analysis. The inspection comes from Blender
// reading an untrusted file, bounded only at 16 MiB of JSON, and the
// analysis is stored with the job and shown in every Job object, a page of
// GET /jobs holding up to MaxPageSize of them: a file of 200,000 scenes or
// of names a megabyte long must not make a job of 16 MiB. Each bound is
// well past what a production file holds (Blender 4.x names are at most
// 63 bytes, Blender 5's 255; a path at most 1,024; a scene has a handful
// of view layers, tens of passes, a few File Output nodes), so an honest
// analysis is never cut. Lists are bounded in count and in bytes (as the
// API writes their JSON), so that nesting cannot multiply them and names
// full of characters JSON escapes cannot swell them.
//
// Over a bound, the analysis is cut rather than validation failed: the
// file still renders as Blender reads it, and what is cut is only what the
// artist reads (a name, the tail of a list). Each cut says so in an
// ANALYSIS_TRUNCATED warning. The one thing a render request picks by name
// is a scene: a scene is never listed under a name that is not its own (a
// name over the bound, or with a NUL, which Blender's names cannot hold),
// but left out, so that a request naming it is a 400 that says why.
const (
	// MaxAnalysisNameBytes bounds a name: a scene's, a camera's, a view
	// layer's, a pass's, a node's, an external file's.
	MaxAnalysisNameBytes = 256
	// MaxAnalysisPathBytes bounds a path: Blender's own limit (FILE_MAX).
	MaxAnalysisPathBytes = 1024
	// MaxAnalysisWordBytes bounds an identifier (an engine, a format) and
	// a version.
	MaxAnalysisWordBytes = 64

	// MaxAnalysisScenes and MaxAnalysisScenesBytes bound the scenes: the
	// active one first, then the others in the file's order while they
	// fit.
	MaxAnalysisScenes      = 64
	MaxAnalysisScenesBytes = 192 << 10
	// A scene's lists, each bounded on its own: one scene's whole
	// description is at most about 90 KiB, so the active one always fits.
	MaxSceneViewLayers           = 64
	MaxSceneViewLayersBytes      = 8 << 10
	MaxSceneViews                = 64
	MaxSceneViewsBytes           = 4 << 10
	MaxSceneFileOutputNodes      = 64
	MaxSceneFileOutputSlots      = 256 // per node
	MaxSceneFileOutputNodesBytes = 32 << 10
	MaxSceneRenderPassLayers     = 64
	MaxSceneRenderPasses         = 512 // per view layer
	MaxSceneRenderPassesBytes    = 32 << 10

	// MaxAnalysisViewTransforms bounds the view transforms of the farm's
	// Blender (an ACES config offers a few dozen).
	MaxAnalysisViewTransforms      = 64
	MaxAnalysisViewTransformsBytes = 4 << 10
	// MaxAnalysisExternalFiles bounds the external files listed (the
	// inspection lists 5,000 at most); over MaxAnalysisExternalFilesBytes,
	// the missing ones are listed first, then those present.
	MaxAnalysisExternalFiles      = 5000
	MaxAnalysisExternalFilesBytes = 128 << 10
	MaxAnalysisLibraries          = 1000
	MaxAnalysisLibrariesBytes     = 32 << 10
	// MaxAnalysisWarnings bounds the warnings about the file (a missing
	// file, a scene without a camera…); the ANALYSIS_TRUNCATED warnings,
	// a few at most, come after them.
	MaxAnalysisWarnings      = 200
	MaxAnalysisWarningsBytes = 48 << 10

	// MaxAnalysisBytes is the most an analysis takes as the API writes its
	// JSON (TestAWorstCaseAnalysisIsWithinItsBound builds it): the lists'
	// bounds, a few KiB of single fields, and the ANALYSIS_TRUNCATED
	// warnings. A page of GET /jobs holds at most MaxPageSize of them.
	MaxAnalysisBytes = 448 << 10
)

// analysisCuts collects what bounding the inspection cut, for the
// ANALYSIS_TRUNCATED warnings.
type analysisCuts struct {
	names          int      // names, paths and identifiers cut or mended
	scenesOver     int      // scenes past the count or the bytes
	scenesTotal    int      // scenes in the inspection
	badScenes      []string // scenes left out for their names, as cut
	activeLeftOut  bool
	partialScenes  []string // scenes whose own lists were cut
	filesLeftOut   int
	missingLeftOut int
	filesTotal     int
	libsLeftOut    int
	libsTotal      int
	transformsCut  bool
}

func (c *analysisCuts) text(s *string, limit int) {
	if t, changed := boundText(*s, limit); changed {
		*s = t
		c.names++
	}
}

// boundText makes s valid UTF-8 without NUL (each bad byte or NUL becomes
// U+FFFD, as no Blender name holds them) of at most limit bytes: a longer
// one keeps its start, cut at a character, and ends in "…". It reports
// whether s changed.
func boundText(s string, limit int) (string, bool) {
	t := s
	if !utf8.ValidString(t) || strings.IndexByte(t, 0) >= 0 {
		t = strings.ReplaceAll(strings.ToValidUTF8(t, "\uFFFD"), "\x00", "\uFFFD")
	}
	if len(t) > limit {
		const ellipsis = "…"
		cut := limit - len(ellipsis)
		for cut > 0 && !utf8.RuneStart(t[cut]) {
			cut--
		}
		t = t[:cut] + ellipsis
	}
	return t, t != s
}

// jsonSize is how many bytes the API's JSON of v takes (without HTML
// escaping, as the API and the store write it), its separating comma
// included.
func jsonSize(v any) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return 1 << 30 // never for the analysis's plain types
	}
	return buf.Len() // the encoder's newline stands for the comma
}

// fitList is how many of the first items of a list fit in count items
// and limit bytes.
func fitList[T any](items []T, count, limit int) int {
	size := 2 // [ ]
	for i, item := range items {
		if i == count {
			return i
		}
		size += jsonSize(item)
		if size > limit {
			return i
		}
	}
	return len(items)
}

// boundInspection cuts ins to the analysis's bounds, in place, and says
// what it cut.
func boundInspection(ins *Inspection) analysisCuts {
	var c analysisCuts
	c.text(&ins.FileVersion, MaxAnalysisWordBytes)
	c.text(&ins.BlenderVersion, MaxAnalysisWordBytes)

	ins.ViewTransforms = slices.Clone(ins.ViewTransforms)
	for i := range ins.ViewTransforms {
		c.text(&ins.ViewTransforms[i], MaxAnalysisNameBytes)
	}
	if n := fitList(ins.ViewTransforms, MaxAnalysisViewTransforms, MaxAnalysisViewTransformsBytes); n < len(ins.ViewTransforms) {
		ins.ViewTransforms, c.transformsCut = ins.ViewTransforms[:n], true
	}

	activeName := ins.ActiveScene
	c.text(&ins.ActiveScene, MaxAnalysisNameBytes)
	ins.Scenes = boundScenes(ins.Scenes, activeName, &c)
	if c.activeLeftOut {
		// Cut, its name may be another scene's (one of exactly 256 bytes
		// ending in "…", one with U+FFFD where it has a NUL): a render
		// that names no scene would render that one in its stead.
		ins.ActiveScene = ""
	}

	c.filesTotal = len(ins.ExternalFiles)
	ins.ExternalFiles = slices.Clone(ins.ExternalFiles)
	for i := range ins.ExternalFiles {
		f := &ins.ExternalFiles[i]
		c.text(&f.Type, MaxAnalysisWordBytes)
		c.text(&f.Name, MaxAnalysisNameBytes)
		c.text(&f.Path, MaxAnalysisPathBytes)
	}
	ins.ExternalFiles, c.filesLeftOut, c.missingLeftOut = fitMissingFirst(ins.ExternalFiles, MaxAnalysisExternalFiles, MaxAnalysisExternalFilesBytes,
		func(f ExternalFile) bool { return f.Missing })
	if c.filesLeftOut > 0 {
		ins.ExternalFilesTruncated = true
	}

	c.libsTotal = len(ins.Libraries)
	ins.Libraries = slices.Clone(ins.Libraries)
	for i := range ins.Libraries {
		l := &ins.Libraries[i]
		c.text(&l.Name, MaxAnalysisNameBytes)
		c.text(&l.Path, MaxAnalysisPathBytes)
		c.text(&l.Parent, MaxAnalysisNameBytes)
	}
	ins.Libraries, c.libsLeftOut, _ = fitMissingFirst(ins.Libraries, MaxAnalysisLibraries, MaxAnalysisLibrariesBytes,
		func(l Library) bool { return l.Missing })
	return c
}

// fitMissingFirst cuts items (which it may reorder) to fitList's count
// and size; when they do not all fit, the missing ones, which the artist
// must fix, go first, each kind in its own order. It answers what it
// keeps, how many it left out, and how many of those were missing.
func fitMissingFirst[T any](items []T, count, limit int, missing func(T) bool) (kept []T, leftOut, missingLeftOut int) {
	n := fitList(items, count, limit)
	if n == len(items) {
		return items, 0, 0
	}
	slices.SortStableFunc(items, func(a, b T) int {
		switch ma, mb := missing(a), missing(b); {
		case ma == mb:
			return 0
		case ma:
			return -1
		}
		return 1
	})
	n = fitList(items, count, limit)
	for _, item := range items[n:] {
		if missing(item) {
			missingLeftOut++
		}
	}
	return items[:n], len(items) - n, missingLeftOut
}

// boundScenes bounds each scene, leaves out those whose names are not
// their own once bounded, and keeps the active scene (named active in the
// inspection) and then the others in order while they fit.
func boundScenes(scenes []Scene, active string, c *analysisCuts) []Scene {
	c.scenesTotal = len(scenes)
	var ok []Scene
	for _, s := range scenes {
		name := s.Name
		s, partial := boundScene(s, c)
		if s.Name != name {
			c.badScenes = append(c.badScenes, s.Name)
			if name == active {
				c.activeLeftOut = true
			}
			continue
		}
		if partial {
			c.partialScenes = append(c.partialScenes, s.Name)
		}
		ok = append(ok, s)
	}
	keep := make([]bool, len(ok))
	size, kept := 2, 0
	take := func(i int) bool {
		n := jsonSize(ok[i])
		if kept == MaxAnalysisScenes || size+n > MaxAnalysisScenesBytes {
			return false
		}
		keep[i], size, kept = true, size+n, kept+1
		return true
	}
	// A scene is at most about 90 KiB, so the active one always fits.
	if i := slices.IndexFunc(ok, func(s Scene) bool { return s.Name == active }); i >= 0 {
		take(i)
	}
	for i := range ok {
		if !keep[i] && !take(i) {
			break
		}
	}
	out := make([]Scene, 0, kept)
	for i, s := range ok {
		if keep[i] {
			out = append(out, s)
		}
	}
	c.scenesOver = len(ok) - len(out)
	return out
}

// boundScene bounds a scene's names and lists; partial reports a list cut.
func boundScene(s Scene, c *analysisCuts) (Scene, bool) {
	partial := false
	c.text(&s.Name, MaxAnalysisNameBytes)
	c.text(&s.Camera, MaxAnalysisNameBytes)
	for _, w := range []*string{&s.Engine, &s.OutputFormat, &s.ColorMode, &s.ColorDepth, &s.Denoiser} {
		c.text(w, MaxAnalysisWordBytes)
	}
	c.text(&s.ViewTransform, MaxAnalysisNameBytes)
	c.text(&s.OutputPath, MaxAnalysisPathBytes)

	s.ViewLayers = slices.Clone(s.ViewLayers)
	for i := range s.ViewLayers {
		c.text(&s.ViewLayers[i], MaxAnalysisNameBytes)
	}
	if n := fitList(s.ViewLayers, MaxSceneViewLayers, MaxSceneViewLayersBytes); n < len(s.ViewLayers) {
		s.ViewLayers, partial = s.ViewLayers[:n], true
	}

	if s.Multiview != nil {
		mv := *s.Multiview
		c.text(&mv.Mode, MaxAnalysisWordBytes)
		c.text(&mv.ImageViews, MaxAnalysisWordBytes)
		mv.Views = slices.Clone(mv.Views)
		for i := range mv.Views {
			c.text(&mv.Views[i].Name, MaxAnalysisNameBytes)
			c.text(&mv.Views[i].Suffix, MaxAnalysisNameBytes)
		}
		if n := fitList(mv.Views, MaxSceneViews, MaxSceneViewsBytes); n < len(mv.Views) {
			mv.Views, partial = mv.Views[:n], true
		}
		s.Multiview = &mv
	}

	s.FileOutputNodes = slices.Clone(s.FileOutputNodes)
	for i := range s.FileOutputNodes {
		node := &s.FileOutputNodes[i]
		c.text(&node.Name, MaxAnalysisNameBytes)
		c.text(&node.Format, MaxAnalysisWordBytes)
		c.text(&node.Codec, MaxAnalysisWordBytes)
		c.text(&node.ImageViews, MaxAnalysisWordBytes)
		c.text(&node.BasePath, MaxAnalysisPathBytes)
		if len(node.Slots) > MaxSceneFileOutputSlots {
			node.Slots, partial = node.Slots[:MaxSceneFileOutputSlots], true
		}
		node.Slots = slices.Clone(node.Slots)
		for j := range node.Slots {
			slot := &node.Slots[j]
			c.text(&slot.Path, MaxAnalysisPathBytes)
			c.text(&slot.Format, MaxAnalysisWordBytes)
			c.text(&slot.Codec, MaxAnalysisWordBytes)
			c.text(&slot.ImageViews, MaxAnalysisWordBytes)
		}
	}
	if n := fitList(s.FileOutputNodes, MaxSceneFileOutputNodes, MaxSceneFileOutputNodesBytes); n < len(s.FileOutputNodes) {
		s.FileOutputNodes, partial = s.FileOutputNodes[:n], true
	}

	s.RenderPasses = slices.Clone(s.RenderPasses)
	for i := range s.RenderPasses {
		layer := &s.RenderPasses[i]
		c.text(&layer.ViewLayer, MaxAnalysisNameBytes)
		if len(layer.Passes) > MaxSceneRenderPasses {
			layer.Passes, partial = layer.Passes[:MaxSceneRenderPasses], true
		}
		layer.Passes = slices.Clone(layer.Passes)
		for j := range layer.Passes {
			c.text(&layer.Passes[j], MaxAnalysisNameBytes)
		}
	}
	if n := fitList(s.RenderPasses, MaxSceneRenderPassLayers, MaxSceneRenderPassesBytes); n < len(s.RenderPasses) {
		s.RenderPasses, partial = s.RenderPasses[:n], true
	}
	return s, partial
}

// truncationWarnings are the ANALYSIS_TRUNCATED warnings for what
// boundInspection cut, each saying what is left out and what it means.
// There are at most five, each of a bounded length.
func (c *analysisCuts) truncationWarnings() []Warning {
	var ws []Warning
	add := func(format string, args ...any) {
		ws = append(ws, Warning{Code: WarnAnalysisTruncated, Message: fmt.Sprintf(format, args...)})
	}
	if len(c.badScenes) > 0 {
		active := ""
		if c.activeLeftOut {
			active = " (the active scene among them, so a render must name another scene)"
		}
		add("%d scene(s) are left out of this analysis, and a render cannot pick them, because their names are over %d bytes or hold a NUL, which Blender's names never do: %s%s; rename them in Blender and upload the file again",
			len(c.badScenes), MaxAnalysisNameBytes, quoteSome(c.badScenes, 3), active)
	}
	if c.scenesOver > 0 {
		add("the file has %d scenes; this analysis lists %d of them (the active scene first, then the others in the file's order, within %d scenes and %d KiB), and a render can pick only those; make the scene to render the active one, or keep fewer scenes in the file",
			c.scenesTotal, c.scenesTotal-len(c.badScenes)-c.scenesOver, MaxAnalysisScenes, MaxAnalysisScenesBytes>>10)
	}
	if len(c.partialScenes) > 0 {
		add("the view layers, views, File Output nodes or render passes of %d scene(s) are listed only in part (at most %d view layers, %d views, %d File Output nodes of %d inputs and %d view layers' passes of %d each, within a few KiB per list): %s; they render all the same",
			len(c.partialScenes), MaxSceneViewLayers, MaxSceneViews, MaxSceneFileOutputNodes, MaxSceneFileOutputSlots, MaxSceneRenderPassLayers, MaxSceneRenderPasses, quoteSome(c.partialScenes, 3))
	}
	if c.filesLeftOut > 0 || c.libsLeftOut > 0 {
		missing := "all of them present"
		if c.missingLeftOut > 0 {
			missing = fmt.Sprintf("%d of them missing", c.missingLeftOut)
		}
		add("the file names %d external files; %d are not listed here (%s; the missing ones are listed first, within %d KiB), nor %d of its %d linked libraries",
			c.filesTotal, c.filesLeftOut, missing, MaxAnalysisExternalFilesBytes>>10, c.libsLeftOut, c.libsTotal)
	}
	if c.names > 0 || c.transformsCut {
		add("%d name(s), path(s) or identifier(s) of the file were cut to this analysis's bounds (names %d bytes, paths %d) or had bytes that are not UTF-8 or a NUL replaced by U+FFFD; the file renders with its own",
			c.names, MaxAnalysisNameBytes, MaxAnalysisPathBytes)
	}
	return ws
}

// quoteSome quotes the first n names and says how many more there are.
func quoteSome(names []string, n int) string {
	quoted := make([]string, 0, n)
	for _, s := range names[:min(n, len(names))] {
		quoted = append(quoted, fmt.Sprintf("%q", s))
	}
	if more := len(names) - len(quoted); more > 0 {
		return strings.Join(quoted, ", ") + fmt.Sprintf(" and %d more", more)
	}
	return strings.Join(quoted, ", ")
}

// boundWarnings keeps the warnings about the file that fit in
// MaxAnalysisWarnings and MaxAnalysisWarningsBytes, then one that says how
// many more there were, then the ANALYSIS_TRUNCATED ones (at most six,
// each of a bounded length), so that bounding again changes nothing.
func boundWarnings(ws []Warning) []Warning {
	about, cuts := make([]Warning, 0, len(ws)), []Warning(nil)
	for _, w := range ws {
		// Warnings are made of bounded names; a stored one may not be.
		w.Code, _ = boundText(w.Code, MaxAnalysisWordBytes)
		w.Message, _ = boundText(w.Message, 4*MaxAnalysisPathBytes)
		w.Path, _ = boundText(w.Path, MaxAnalysisPathBytes)
		if w.Code == WarnAnalysisTruncated {
			cuts = append(cuts, w)
		} else {
			about = append(about, w)
		}
	}
	n := fitList(about, MaxAnalysisWarnings, MaxAnalysisWarningsBytes)
	out := about[:n:n]
	if n < len(about) {
		out = append(out, Warning{Code: WarnAnalysisTruncated,
			Message: fmt.Sprintf("%d more warnings are not listed (this analysis lists %d warnings within %d KiB)", len(about)-n, MaxAnalysisWarnings, MaxAnalysisWarningsBytes>>10)})
	}
	return append(out, cuts[:min(len(cuts), 6)]...)
}

// quotedNames quotes names for a message, up to 10 of them: a message
// names no more than that of a list of up to MaxAnalysisScenes.
func quotedNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return quoteSome(names, 10)
}
