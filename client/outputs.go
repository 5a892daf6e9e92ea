package client

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Files lists every file of a job's output in one list, the way a pipeline
// that mirrors a job into a folder wants it: the frames in frame order,
// then the frames zip and the preview video when the farm has made them.
// Each entry has its URL, a file name and, on renderfarm, its size.
//
// A server that fills only the legacy lists (Frames, Transforms.FramesZip)
// still gets its files listed, named after the last element of their URL
// path. The compositor's images are listed apart, by [Downloads.CompositeNodeFiles];
// the zip of them is here, after the frames zip.
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
	switch {
	case t.CompositeNodesZipOutputs != nil && t.CompositeNodesZipOutputs.URL != "":
		files = append(files, *t.CompositeNodesZipOutputs)
	case t.CompositeNodesZip != nil && *t.CompositeNodesZip != "":
		files = append(files, FileOutput{URL: *t.CompositeNodesZip, FileName: nameFromURL(*t.CompositeNodesZip, "compositeNodes.zip")})
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

// CompositeNodeFiles lists the images the compositor's File Output nodes
// wrote, in frame order, each with the RelativePath it has in the
// compositeNodes zip: a folder per node ("Depth_Out/depth_0001.exr"). A
// server that fills only the legacy list gets its files named after their
// URL, in a folder "compositeNodes".
func (d *Downloads) CompositeNodeFiles() []FileOutput {
	if len(d.CompositeNodeOutputs) > 0 {
		return d.CompositeNodeOutputs
	}
	var files []FileOutput
	for i, u := range d.CompositeNodes {
		name := nameFromURL(u, fmt.Sprintf("file_%04d", i+1))
		files = append(files, FileOutput{URL: u, FileName: name, RelativePath: name})
	}
	return files
}

// LocalPath is where a file of relative path rel, as a server names it,
// goes below dir. The server's path is not trusted: it must be relative,
// each of its parts a plain name (no "..", no empty part, none starting
// with a dot), or LocalPath refuses it.
func LocalPath(dir, rel string) (string, error) {
	rel = strings.ReplaceAll(rel, `\`, "/")
	if rel == "" || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("client: %q is not a relative path", rel)
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == "" || strings.HasPrefix(p, ".") || strings.ContainsRune(p, 0) || (len(p) >= 2 && p[1] == ':') {
			return "", fmt.Errorf("client: %q is not a plain relative path (part %q)", rel, p)
		}
	}
	return filepath.Join(append([]string{dir}, parts...)...), nil
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
