package client_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

func TestDownloadsFilesListsFramesThenZipThenVideo(t *testing.T) {
	var d client.Downloads
	err := json.Unmarshal([]byte(`{
	  "frames": ["http://farm/f1?sig=a", "http://farm/f2?sig=b"],
	  "compositeNodes": [],
	  "transforms": {
	    "framesZip": "http://farm/frames.zip?sig=z",
	    "framesZipOutputs": {"url": "http://farm/frames.zip?sig=z", "fileName": "frames.zip", "sizeBytes": 300},
	    "video": {"url": "http://farm/preview.mp4?sig=v", "fileName": "preview.mp4", "codec": "h264", "fps": 24, "sizeBytes": 900}
	  },
	  "frameOutputs": [
	    {"url": "http://farm/f1?sig=a", "fileName": "frame_0001.png", "frame": 1, "sizeBytes": 10},
	    {"url": "http://farm/f2?sig=b", "fileName": "frame_0002.png", "frame": 2, "sizeBytes": 20}
	  ],
	  "compositeNodeOutputs": []
	}`), &d)
	if err != nil {
		t.Fatal(err)
	}
	files := d.Files()
	want := []struct {
		name string
		size int64
	}{{"frame_0001.png", 10}, {"frame_0002.png", 20}, {"frames.zip", 300}, {"preview.mp4", 900}}
	if len(files) != len(want) {
		t.Fatalf("Files() = %+v, want %d files", files, len(want))
	}
	for i, w := range want {
		if files[i].FileName != w.name || files[i].SizeBytes != w.size || files[i].URL == "" {
			t.Errorf("file %d = %+v, want %s of %d bytes with a URL", i, files[i], w.name, w.size)
		}
	}
}

func TestDownloadsFilesFromLegacyListsOnly(t *testing.T) {
	zipURL := "http://cdn/job/frames.zip?sig=z"
	d := client.Downloads{
		Frames:     []string{"http://cdn/job/0001.exr?sig=a", "http://cdn/?sig=b"},
		Transforms: client.Transforms{FramesZip: &zipURL},
	}
	var names []string
	for _, f := range d.Files() {
		names = append(names, f.FileName)
	}
	if want := "0001.exr frame_0002 frames.zip"; strings.Join(names, " ") != want {
		t.Errorf("names = %q, want %q", strings.Join(names, " "), want)
	}
}

func TestDownloadsFilesBeforeOutputIsEmpty(t *testing.T) {
	var d client.Downloads
	if files := d.Files(); len(files) != 0 {
		t.Errorf("Files() of empty downloads = %+v", files)
	}
}

func TestCompositeNodeFilesKeepTheirNodesFolders(t *testing.T) {
	var d client.Downloads
	err := json.Unmarshal([]byte(`{
	  "frames": [], "compositeNodes": ["http://farm/a?sig=1", "http://farm/b?sig=2"],
	  "transforms": {"compositeNodesZip": "http://farm/compositeNodes.zip?sig=z",
	    "compositeNodesZipOutputs": {"url": "http://farm/compositeNodes.zip?sig=z", "fileName": "compositeNodes.zip", "sizeBytes": 5}},
	  "frameOutputs": [],
	  "compositeNodeOutputs": [
	    {"url": "http://farm/a?sig=1", "fileName": "Depth_Out/depth_0001.exr", "relativePath": "Depth_Out/depth_0001.exr", "compositeNodeName": "Depth Out", "frame": 1},
	    {"url": "http://farm/b?sig=2", "fileName": "AO/ao_0001.png", "relativePath": "AO/ao_0001.png", "compositeNodeName": "AO", "frame": 1}
	  ]
	}`), &d)
	if err != nil {
		t.Fatal(err)
	}
	nodes := d.CompositeNodeFiles()
	if len(nodes) != 2 || nodes[0].RelativePath != "Depth_Out/depth_0001.exr" || *nodes[1].CompositeNodeName != "AO" {
		t.Errorf("CompositeNodeFiles() = %+v", nodes)
	}
	if files := d.Files(); len(files) != 1 || files[0].FileName != "compositeNodes.zip" {
		t.Errorf("Files() = %+v; want the compositeNodes zip alone", files)
	}
	// A server that fills only the legacy list.
	d.CompositeNodeOutputs = nil
	if legacy := d.CompositeNodeFiles(); len(legacy) != 2 || legacy[0].RelativePath != "a" {
		t.Errorf("CompositeNodeFiles() of the legacy list = %+v", legacy)
	}
}

func TestLocalPathRefusesWhatLeavesTheFolder(t *testing.T) {
	got, err := client.LocalPath("dir", "Depth_Out/depth_0001.exr")
	if err != nil || got != "dir/Depth_Out/depth_0001.exr" {
		t.Errorf("LocalPath = %q, %v", got, err)
	}
	for _, rel := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", ".hidden", "a/.b", `..\x`, "C:/x", "a/\x00"} {
		if got, err := client.LocalPath("dir", rel); err == nil {
			t.Errorf("LocalPath(%q) = %q; want it refused", rel, got)
		}
	}
}
