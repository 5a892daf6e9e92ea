package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// pipeDemuxers are ffmpeg's demuxers that split a stream of images laid end
// to end, by the extension Blender gives each format. Frames of these
// formats reach ffmpeg through its standard input as they are read, so
// ffmpeg is started before the first frame is fetched. ffmpeg (5.1) cannot
// split the others (OpenEXR, TIFF, Targa, ...): they are written to
// numbered files, and ffmpeg starts once the last one is there.
var pipeDemuxers = map[string]string{
	".png":  "png_pipe",
	".jpg":  "jpeg_pipe",
	".bmp":  "bmp_pipe",
	".dpx":  "dpx_pipe",
	".webp": "webp_pipe",
	".jp2":  "j2k_pipe",
}

// previewEncoder makes the preview video of a sequence of frames handed to
// it one after the other. The preview is not what the user asked for, so
// its failures never stop the frames: once ffmpeg has failed, the frames
// handed to it are dropped, and finish reports the failure.
type previewEncoder struct {
	fps      float64
	out      string   // where ffmpeg writes the video
	video    *os.File // the video, open, once finish returns nil
	dir      string   // where the numbered files go, for formats not piped
	ext      string
	cmd      *exec.Cmd         // nil when ffmpeg could not be prepared (err says why)
	lifeline *sandbox.Lifeline // held until ffmpeg has exited
	stdin    io.WriteCloser    // nil for formats not piped
	file     *os.File          // the numbered file being written, for formats not piped
	log      bytes.Buffer      // ffmpeg's messages
	err      error             // the first failure
	ended    bool              // ffmpeg was waited for
}

// ffmpegEnv is all of the node's environment ffmpeg gets: a render node
// holds database and bucket credentials, and ffmpeg decodes images that a
// hostile scene may have shaped.
var ffmpegEnv = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}

// ffmpegCommand makes the command that runs ffmpeg with args inside the
// engine's sandbox, as Blender runs: no network, the system read-only, and
// nothing of the node's files but dir, where its input files and its video
// are, which it may write. The sandbox's memory and open-file limits hold
// for it too. It dies with the worker: unconfined, the kernel kills it when
// the worker dies (tieToWorker); confined, the sandbox kills it when its
// lifeline hangs up, which the worker's death does (see
// sandbox.LifelineFD). Call lifeline.Started after Start and lifeline.Close
// after Wait.
func (n *Node) ffmpegCommand(ctx context.Context, dir string, args ...string) (*exec.Cmd, *sandbox.Lifeline, error) {
	// The sandbox runs the program by path, with ffmpegEnv's PATH; the
	// binary the operator named is found with the node's.
	bin, err := exec.LookPath(n.cfg.FFmpeg)
	if err != nil {
		return nil, nil, err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, nil, err
	}
	// The sandbox binds paths as they are given: a relative --data-dir
	// must not name another directory inside it.
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, nil, err
	}
	argv := n.cfg.Sandbox.Command(append([]string{bin}, args...), sandbox.Paths{Writable: []string{dir}})
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = ffmpegEnv
	cmd.Dir = dir
	if !n.cfg.Sandbox.Confined() {
		tieToWorker(cmd)
	}
	// Confined, bubblewrap is not killed with the worker: killed while it
	// sets the sandbox up, it would leave the sandbox's first process
	// waiting for it forever. It finishes the set-up instead, and the
	// sandbox, finding the lifeline hung up, ends at once.
	lifeline, err := n.cfg.Sandbox.Lifeline(cmd)
	if err != nil {
		return nil, nil, err
	}
	// Killed on cancel, ffmpeg is given up on: the lifeline hangs up
	// first, so that a sandbox still being set up ends too.
	cmd.Cancel = func() error {
		lifeline.Close()
		return cmd.Process.Kill()
	}
	// Its output pipes are not waited on for long once it is gone.
	cmd.WaitDelay = ffmpegWaitDelay
	return cmd, lifeline, nil
}

// ffmpegWaitDelay bounds how long a finished or cancelled ffmpeg's output
// is waited for.
const ffmpegWaitDelay = 5 * time.Second

// startPreview prepares the preview video of frames with extension ext in
// dir, and starts ffmpeg at once if the frames can be piped to it.
func (n *Node) startPreview(ctx context.Context, dir, ext string, fps float64) *previewEncoder {
	p := &previewEncoder{fps: fps, out: filepath.Join(dir, "preview.mp4"), dir: dir, ext: ext}
	rate := strconv.FormatFloat(fps, 'f', -1, 64)
	input := []string{"-framerate", rate, "-i", filepath.Join(dir, "seq_%06d"+ext)}
	demuxer, piped := pipeDemuxers[ext]
	if piped {
		input = []string{"-f", demuxer, "-framerate", rate, "-i", "pipe:0"}
	}
	args := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, input...)
	// An H.264 MP4 that every browser plays: yuv420p needs even
	// dimensions, and faststart lets it play before it is fully loaded.
	// The veryfast preset takes 11 ms less than the default (medium) on 24
	// frames of 320x180 and a third less at 1920x1080, for the same
	// quality at the default CRF (SSIM against the frames 0.996 and 0.995
	// either way) and a file no bigger. The faster presets drop
	// macroblock-tree rate control (ultrafast CABAC and deblocking too):
	// 2.5 times the bytes, for 4 ms or less. x264 keeps its own number of
	// threads: one thread saves 2 ms at 320x180 but is 9 % slower at
	// 1920x1080 on 2 cores.
	args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
		"-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-movflags", "+faststart", p.out)
	if p.cmd, p.lifeline, p.err = n.ffmpegCommand(ctx, dir, args...); p.err != nil {
		return p
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if piped {
		if p.stdin, p.err = p.cmd.StdinPipe(); p.err == nil {
			p.err = p.start()
		}
	}
	return p
}

// start starts ffmpeg.
func (p *previewEncoder) start() error {
	if err := p.cmd.Start(); err != nil {
		p.lifeline.Close()
		return err
	}
	p.lifeline.Started()
	return nil
}

// wait waits for a started ffmpeg to exit, once.
func (p *previewEncoder) wait() error {
	p.ended = true
	err := p.cmd.Wait()
	p.lifeline.Close()
	return err
}

// frame returns where the bytes of the i-th frame of the sequence go; the
// frames must come in order, each ended with endFrame. Numbered files are
// numbered from 0 without gaps, which ffmpeg needs, whatever the frame
// numbers (a job may render every fifth frame). Each is a new file
// (O_EXCL): in a directory ffmpeg may write, a link found under its name
// is not written through.
func (p *previewEncoder) frame(i int) io.Writer {
	if p.err == nil && p.stdin == nil {
		p.file, p.err = os.OpenFile(filepath.Join(p.dir, fmt.Sprintf("seq_%06d%s", i, p.ext)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	return p
}

// Write hands bytes of the current frame to ffmpeg. It never fails, so
// that an io.MultiWriter with the zip goes on without the preview.
func (p *previewEncoder) Write(b []byte) (int, error) {
	if p.err == nil {
		if p.stdin != nil {
			_, p.err = p.stdin.Write(b)
		} else {
			_, p.err = p.file.Write(b)
		}
	}
	return len(b), nil
}

// endFrame ends the current frame.
func (p *previewEncoder) endFrame() {
	if p.file != nil {
		if err := p.file.Close(); p.err == nil {
			p.err = err
		}
		p.file = nil
	}
}

// finish ends the sequence and waits for ffmpeg to write the video.
func (p *previewEncoder) finish() error {
	if p.stdin != nil {
		// The end of ffmpeg's input: it encodes what is left and exits.
		p.stdin.Close()
	} else if p.err == nil {
		p.err = p.start()
	}
	if p.cmd != nil && p.cmd.Process != nil && !p.ended {
		// ffmpeg's own failure explains a failed write to its input
		// (a broken pipe), so it comes first.
		if err := p.wait(); err != nil {
			p.err = fmt.Errorf("%w: %s", err, strings.TrimSpace(p.log.String()))
		}
	}
	if p.err == nil {
		p.video, p.err = openVideo(p.out)
	}
	if p.err != nil {
		return fmt.Errorf("ffmpeg: %w", p.err)
	}
	return nil
}

// openVideo opens the video ffmpeg wrote at path. ffmpeg decodes frames a
// hostile scene may have shaped, and may write what it likes in its
// directory: the video is opened without following a link, without
// blocking on a named pipe, and taken only as a regular file of one link,
// so that nothing left under its name has the node store a file of its
// own for the job's owner to download.
func openVideo(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, errors.New("it left a symbolic link where the video should be")
	}
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	switch {
	case err != nil:
	case !info.Mode().IsRegular():
		err = fmt.Errorf("it left a file of mode %s where the video should be, not a regular file", info.Mode().Type())
	case linkCount(info) > 1:
		err = errors.New("it left a file of other names (hard links) where the video should be")
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// linkCount is how many names the file of info has (1 where the system
// does not say).
func linkCount(info os.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// stop kills ffmpeg if it still runs, when the outputs are given up on.
func (p *previewEncoder) stop() {
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
	if p.video != nil {
		p.video.Close()
		p.video = nil
	}
	// The lifeline hangs up first, so that a sandbox still being set up
	// ends too.
	p.lifeline.Close()
	if p.cmd != nil && p.cmd.Process != nil && !p.ended {
		p.cmd.Process.Kill()
		p.wait()
	}
}
