package blender

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// A reader of the OpenEXR files the tests make: single-part scanline
// files of 32-bit float channels, uncompressed or ZIP, which is what
// Blender writes for a float OpenEXR with the ZIP codec. It lets a test
// read a pass Blender wrote (the samples each pixel took) without a
// library the module does not otherwise need.

// exrImage is an OpenEXR file's channels by name, each width*height
// floats from the top row down, and its header's string attributes.
type exrImage struct {
	width, height int
	channels      map[string][]float32
	strings       map[string]string
}

// channelEndingIn answers the one channel whose name ends in suffix.
func (img *exrImage) channelEndingIn(suffix string) ([]float32, error) {
	var found []float32
	var names []string
	for name, values := range img.channels {
		if strings.HasSuffix(name, suffix) {
			found = values
		}
		names = append(names, name)
	}
	if found == nil {
		return nil, fmt.Errorf("no channel ending in %q among %q", suffix, names)
	}
	return found, nil
}

func readEXR(path string) (*exrImage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 8 || string(data[:4]) != exrMagic {
		return nil, fmt.Errorf("%s: not an OpenEXR file", path)
	}
	if flags := binary.LittleEndian.Uint32(data[4:8]); flags&0x1200 != 0 {
		return nil, fmt.Errorf("%s: tiled or multi-part, which this reader does not read", path)
	}
	r := &exrReader{data: data, at: 8}
	img := &exrImage{channels: map[string][]float32{}, strings: map[string]string{}}
	var channels []string
	compression := -1
	for r.data[r.at] != 0 {
		name, kind := r.cstring(), r.cstring()
		value := r.bytes(int(r.uint32()))
		switch {
		case name == "channels":
			c := &exrReader{data: value}
			for c.data[c.at] != 0 {
				channel := c.cstring()
				if pixelType := c.uint32(); pixelType != 2 {
					return nil, fmt.Errorf("%s: channel %q is not 32-bit float", path, channel)
				}
				c.bytes(12)
				channels = append(channels, channel)
			}
		case name == "compression":
			compression = int(value[0])
		case name == "dataWindow":
			box := make([]int32, 4)
			if err := binary.Read(bytes.NewReader(value), binary.LittleEndian, box); err != nil {
				return nil, err
			}
			img.width, img.height = int(box[2]-box[0]+1), int(box[3]-box[1]+1)
		case kind == "string":
			img.strings[name] = string(value)
		}
		if r.err != nil {
			return nil, fmt.Errorf("%s: header: %w", path, r.err)
		}
	}
	r.at++
	linesPerBlock := map[int]int{0: 1, 2: 1, 3: 16}[compression]
	if linesPerBlock == 0 {
		return nil, fmt.Errorf("%s: compression %d, where this reader reads none or ZIP", path, compression)
	}
	for _, name := range channels {
		img.channels[name] = make([]float32, img.width*img.height)
	}
	blocks := (img.height + linesPerBlock - 1) / linesPerBlock
	offsets := make([]uint64, blocks)
	for i := range offsets {
		offsets[i] = r.uint64()
	}
	for _, offset := range offsets {
		b := &exrReader{data: data, at: int(offset)}
		y := int(int32(b.uint32()))
		packed := b.bytes(int(b.uint32()))
		if b.err != nil {
			return nil, fmt.Errorf("%s: block at %d: %w", path, offset, b.err)
		}
		lines := min(linesPerBlock, img.height-y)
		raw := packed
		if size := lines * len(channels) * img.width * 4; len(packed) < size {
			if raw, err = unzipEXR(packed, size); err != nil {
				return nil, fmt.Errorf("%s: block at %d: %w", path, offset, err)
			}
		}
		at := 0
		for line := range lines {
			for _, name := range channels {
				row := img.channels[name][(y+line)*img.width:]
				for x := range img.width {
					row[x] = math.Float32frombits(binary.LittleEndian.Uint32(raw[at:]))
					at += 4
				}
			}
		}
	}
	return img, nil
}

// unzipEXR undoes OpenEXR's ZIP: zlib, then a byte predictor, then the
// two halves of the bytes interleaved again.
func unzipEXR(packed []byte, size int) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(packed))
	if err != nil {
		return nil, err
	}
	t := make([]byte, size)
	if _, err := io.ReadFull(zr, t); err != nil {
		return nil, err
	}
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] + t[i] - 128
	}
	out := make([]byte, size)
	half := (size + 1) / 2
	for i := range out {
		if i%2 == 0 {
			out[i] = t[i/2]
		} else {
			out[i] = t[half+i/2]
		}
	}
	return out, nil
}

type exrReader struct {
	data []byte
	at   int
	err  error
}

func (r *exrReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || r.at+n > len(r.data) {
		r.err = io.ErrUnexpectedEOF
		return make([]byte, max(n, 0))
	}
	b := r.data[r.at : r.at+n]
	r.at += n
	return b
}

func (r *exrReader) cstring() string {
	end := bytes.IndexByte(r.data[r.at:], 0)
	if end < 0 {
		r.err = io.ErrUnexpectedEOF
		return ""
	}
	s := string(r.data[r.at : r.at+end])
	r.at += end + 1
	return s
}

func (r *exrReader) uint32() uint32 { return binary.LittleEndian.Uint32(r.bytes(4)) }
func (r *exrReader) uint64() uint64 { return binary.LittleEndian.Uint64(r.bytes(8)) }
