package client

import (
	"fmt"
	"net/url"
	"path"
)

// Files lists every file of a job's output in one list, the way a pipeline
// that mirrors a job into a folder wants it: the frames in frame order,
// then the frames zip and the preview video when the farm has made them.
// Each entry has its URL, a file name and, on renderfarm, its size.
//
// A server that fills only the legacy lists (Frames, Transforms.FramesZip)
// still gets its files listed, named after the last element of their URL
// path. Compositor outputs are not included.
func (d *Downloads) Files() []FileOutput {
	var files []FileOutput
	if len(d.FrameOutputs) > 0 {
		files = append(files, d.FrameOutputs...)
	} else {
		for i, u := range d.Frames {
			files = append(files, FileOutput{URL: u, FileName: nameFromURL(u, fmt.Sprintf("frame_%04d", i+1))})
		}
	}
	t := d.Transforms
	switch {
	case t.FramesZipOutputs != nil && t.FramesZipOutputs.URL != "":
		files = append(files, *t.FramesZipOutputs)
	case t.FramesZip != nil && *t.FramesZip != "":
		files = append(files, FileOutput{URL: *t.FramesZip, FileName: nameFromURL(*t.FramesZip, "frames.zip")})
	}
	if v := t.Video; v != nil && v.URL != "" {
		name := v.FileName
		if name == "" {
			name = nameFromURL(v.URL, "preview.mp4")
		}
		files = append(files, FileOutput{URL: v.URL, FileName: name, RelativePath: name, SizeBytes: v.SizeBytes})
	}
	return files
}

// nameFromURL returns the last element of a URL's path, or fallback when
// there is none worth using.
func nameFromURL(rawURL, fallback string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fallback
	}
	name := path.Base(u.Path)
	if name == "." || name == "/" || name == "" {
		return fallback
	}
	return name
}
