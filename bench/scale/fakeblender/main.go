// Command fakeblender is a load generator for bench/scale: an executable
// that a render node takes for Blender, and that renders nothing. It
// answers the farm's start-up probe (--version) as the Blender it is built
// to be, and speaks the protocol of the farm's session script
// (internal/blender/scripts/session.py) on stdin and stdout: it inspects
// the file as a one-scene Cycles file, configures PNG output, and for each
// frame of a render waits the frame time and writes a small valid PNG
// under the name the farm expects. Real `renderfarm worker` processes
// drive it unchanged, so the farm's own cost per chunk (dispatch, claim,
// storing and recording frames) can be measured with hundreds of render
// slots on a small machine.
//
// It is never a stand-in for Blender's correctness: no test passes
// because of it. Its version and frame time are set when it is built,
// since the farm passes Blender no value of its choosing:
//
//	go build -ldflags "-X main.version=3.4.1 -X main.frameTime=100ms" -o fakeblender ./bench/scale/fakeblender
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Set at build time (-ldflags -X).
var (
	// version is the Blender version the fake reports.
	version = "3.4.1"
	// frameTime is how long each frame "renders".
	frameTime = "100ms"
)

// command is one line of the session protocol (see session.py).
type command struct {
	Op        string          `json:"op"`
	Nonce     string          `json:"nonce"`
	Out       string          `json:"out"`
	Frames    []int           `json:"frames"`
	OutputDir string          `json:"outputDir"`
	Request   json.RawMessage `json:"request"`
}

func main() {
	args := os.Args[1:]
	if slices.Contains(args, "--version") {
		fmt.Printf("Blender %s (fake, for benchmarks)\n\tbuild date: fake\n", version)
		return
	}
	i := slices.Index(args, "--")
	if i < 0 || i+1 >= len(args) || !slices.Contains(args, "--python") {
		fmt.Fprintln(os.Stderr, "fakeblender: expects Blender's session command line: ... --python session.py -- SESSION.json")
		os.Exit(2)
	}
	perFrame, err := time.ParseDuration(frameTime)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakeblender: frame time %q: %v\n", frameTime, err)
		os.Exit(2)
	}
	blend, err := sessionBlend(args[i+1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("Read blend: %s\n", blend)
	s := &session{out: bufio.NewWriter(os.Stdout), frameTime: perFrame, image: smallPNG()}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 16<<20)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintf(os.Stderr, "Error: a command that is not JSON: %v\n", err)
			os.Exit(1)
		}
		ok := s.do(c)
		s.signal(c, map[bool]string{true: "ok", false: "failed"}[ok])
	}
}

// sessionBlend reads the .blend's path from the session file and checks
// that it is a .blend, as Blender would fail to load one that is not.
func sessionBlend(path string) (string, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var spec struct {
		BlendPath string `json:"blendPath"`
	}
	if err := json.Unmarshal(body, &spec); err != nil {
		return "", fmt.Errorf("session file: %w", err)
	}
	f, err := os.Open(spec.BlendPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 7)
	if _, err := f.Read(head); err != nil {
		return "", err
	}
	// Uncompressed, zstd or gzip (see docs: blender-notes.md).
	if string(head) != "BLENDER" && !bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) && !bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		return "", fmt.Errorf("failed to read blend file %q: not a blend file", spec.BlendPath)
	}
	return spec.BlendPath, nil
}

type session struct {
	out       *bufio.Writer
	frameTime time.Duration
	image     []byte
}

func (s *session) signal(c command, words ...any) {
	fmt.Fprintf(s.out, "renderfarm-session %s %s\n", c.Nonce, strings.TrimSuffix(fmt.Sprintln(words...), "\n"))
	s.out.Flush()
}

func (s *session) fail(format string, args ...any) bool {
	fmt.Fprintf(s.out, "Error: "+format+"\n", args...)
	s.out.Flush()
	return false
}

func (s *session) do(c command) bool {
	switch c.Op {
	case "inspect":
		return s.writeJSON(c.Out, inspection())
	case "configure":
		// What outputs.py writes for a scene of one view without File
		// Output nodes, saving PNG.
		layout := map[string]any{"format": "PNG", "codec": "", "outputPath": "//render/", "useFileExtension": true,
			"multiview": nil, "fileOutputNodes": []any{}, "proxy": false}
		if !s.writeJSON(c.Out, layout) {
			return false
		}
		s.signal(c, "output", "PNG", "JP2")
		return true
	case "render":
		for _, frame := range c.Frames {
			start := time.Now()
			s.signal(c, "frame", frame)
			time.Sleep(s.frameTime)
			name := filepath.Join(c.OutputDir, fmt.Sprintf("frame_%04d.png", frame))
			if err := os.WriteFile(name, s.image, 0o644); err != nil {
				return s.fail("%v", err)
			}
			fmt.Fprintf(s.out, "Saved: '%s'\n", name)
			s.signal(c, "saved", frame, fmt.Sprintf("%.3f", time.Since(start).Seconds()))
		}
		return true
	}
	return s.fail("the fake Blender does not do %q", c.Op)
}

func (s *session) writeJSON(path string, v any) bool {
	body, err := json.Marshal(v)
	if err != nil {
		return s.fail("%v", err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return s.fail("%v", err)
	}
	return true
}

// inspection is what inspect.py reports of a file with one Cycles scene
// of 100,000 frames at 32x18 with a camera and no external files, as saved by
// the Blender the fake is: every key the script writes, as it writes them
// (the farm refuses an inspection that lacks one).
func inspection() map[string]any {
	major, minor, _ := strings.Cut(version, ".")
	minor, _, _ = strings.Cut(minor, ".")
	scene := farm.Scene{
		Name: "Scene", FrameStart: 1, FrameEnd: 100000, FrameStep: 1, FPS: 24,
		ResolutionX: 32, ResolutionY: 18, ResolutionPercentage: 100,
		Engine: "CYCLES", Samples: 1, Camera: "Camera",
		OutputFormat: "PNG", ColorMode: "RGBA", ColorDepth: "8",
		ViewLayers: []string{"ViewLayer"}, ViewTransform: "Filmic",
		OutputPath: "//render/", UseFileExtension: true,
	}
	return map[string]any{
		"fileVersion":            major + "." + minor,
		"blenderVersion":         version,
		"denoiserAvailable":      false,
		"viewTransforms":         []string{"Standard", "Filmic", "Filmic Log", "False Color", "Raw"},
		"activeScene":            scene.Name,
		"scenes":                 []any{withKeys(scene, map[string]any{"multiview": nil, "fileOutputNodes": []any{}, "renderPasses": []any{}})},
		"externalFiles":          []any{},
		"externalFilesTruncated": false,
		"libraries":              []any{},
	}
}

// withKeys is v as a JSON object with extra's keys added: those its type
// leaves out when empty.
func withKeys(v any, extra map[string]any) map[string]any {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		panic(err)
	}
	for k, x := range extra {
		m[k] = x
	}
	return m
}

// smallPNG is a 32x18 grey PNG, the frame every render writes.
func smallPNG() []byte {
	img := image.NewGray(image.Rect(0, 0, 32, 18))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	img.Set(0, 0, color.Gray{Y: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}
