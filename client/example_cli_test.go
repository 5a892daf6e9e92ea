package client_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/renderfarm/renderfarm/client"
)

// A project folder becomes the zip the farm expects: the .blend at the
// root, its textures beside it as on disk, Blender's backups left out.
func ExampleZipFolder() {
	dir, err := os.MkdirTemp("", "shot010-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for name, body := range map[string]string{
		"shot010.blend":     "BLENDER-v304",
		"shot010.blend1":    "the save before",
		"textures/wood.png": "png",
	} {
		path := filepath.Join(dir, filepath.FromSlash(name))
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		_ = os.WriteFile(path, []byte(body), 0o644)
	}

	var zip bytes.Buffer
	blend, err := client.ZipFolder(&zip, dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the farm will render", blend)
	// Output: the farm will render shot010.blend
}

// Uploading a whole project folder: it is zipped on the way, and the
// upload is named after the folder.
func ExampleClient_UploadFolder() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("RENDERFARM_API_KEY"))

	slug, err := c.UploadFolder(ctx, "projects/shot010", func(sent, total int64) {
		fmt.Printf("\ruploading shot010.zip: %3d%%", sent*100/max(total, 1))
	})
	fmt.Println()
	if err != nil {
		// A *client.FolderError says what to change in the folder.
		log.Fatal(err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job", job.ID)
}

// A log of a render that gets a line when something happened, rather
// than one per poll of the farm.
func ExampleProgressChanges() {
	report := client.ProgressChanges(func(p *client.Progress) {
		fmt.Printf("%s: %d/%d frames\n", p.Status, p.FramesCompleted, p.FramesTotal)
	})
	// What three polls of a farm may bring: the second is no news.
	report(&client.Progress{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 11})
	report(&client.Progress{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 11})
	report(&client.Progress{Status: client.StatusRendering, FramesTotal: 24, FramesCompleted: 12})
	// Output:
	// rendering: 11/24 frames
	// rendering: 12/24 frames
}

// Following a render with a progress display, then mirroring its output
// into a folder, skipping what an earlier run already fetched.
func ExampleDownloads_Files() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("RENDERFARM_API_KEY"))
	const id = "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10"

	job, err := c.Wait(ctx, id, client.UntilStatus(client.StatusCompleted), client.ProgressChanges(func(p *client.Progress) {
		log.Printf("%s: %d/%d frames", p.Status, p.FramesCompleted, p.FramesTotal)
	}))
	if err != nil {
		log.Fatal(err) // a *client.JobEndedError says why it failed
	}
	downloads, err := c.Downloads(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join("renders", job.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, f := range downloads.Files() {
		path := filepath.Join(dir, filepath.Base(f.FileName))
		if info, err := os.Stat(path); err == nil && f.SizeBytes > 0 && info.Size() == f.SizeBytes {
			continue // already there from an earlier run
		}
		n, err := c.DownloadFile(ctx, f.URL, path)
		if err != nil {
			log.Fatal(err)
		}
		if f.SizeBytes > 0 && n != f.SizeBytes {
			log.Fatalf("%s: got %d bytes, the farm lists %d", path, n, f.SizeBytes)
		}
	}
}
