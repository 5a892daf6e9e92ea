package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/renderfarm/renderfarm/client"
)

// The whole life of a render from a pipeline: upload a .blend, make a job,
// validate it, render frames 1 to 24 with 32 samples, wait for the farm to
// finish, and download the frames. It needs a running server, so it only
// compiles here.
func Example() {
	// Ctrl-C cancels whatever call is running, including a long Wait.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c := client.New("http://127.0.0.1:8080", os.Getenv("RENDERFARM_API_KEY"))

	slug, err := c.UploadFile(ctx, "shot010.blend", func(sent, total int64) {
		fmt.Printf("\ruploading: %3d%%", sent*100/max(total, 1))
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println()

	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Validate(ctx, job.ID); err != nil {
		log.Fatal(err)
	}
	// A file the farm cannot render ends the wait with a *JobEndedError
	// that says why.
	job, err = c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range job.Analysis.Warnings {
		log.Printf("warning %s: %s", w.Code, w.Message)
	}

	// Only what should differ from the file is sent; the rest is the
	// file's own setting.
	job, replay, err := c.Render(ctx, job.ID, client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1-24"},
		SampleCount:           client.Int(32),
	})
	if err != nil {
		log.Fatal(err)
	}
	if replay {
		log.Printf("job %s was already rendering", job.ID)
	}

	job, err = c.Wait(ctx, job.ID, client.UntilStatus(client.StatusCompleted), func(p *client.Progress) {
		fmt.Printf("\r%s: %d/%d frames", p.Status, p.FramesCompleted, p.FramesTotal)
	})
	fmt.Println()
	if err != nil {
		log.Fatal(err)
	}

	downloads, err := c.Downloads(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join("renders", job.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, frame := range downloads.FrameOutputs {
		// The name comes from the server: keep only its last element so
		// that it cannot point outside dir.
		path := filepath.Join(dir, filepath.Base(frame.FileName))
		if _, err := c.DownloadFile(ctx, frame.URL, path); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%d frames in %s\n", len(downloads.FrameOutputs), dir)
}

// Errors the server answered carry a stable code, so a pipeline can tell
// "fix the request" from "try again later".
func ExampleAPIError() {
	c := client.New("http://127.0.0.1:8080", os.Getenv("RENDERFARM_API_KEY"))
	_, _, err := c.Render(context.Background(), "7d3c1a52-0a8e-4a39-9c43-6f1f0b8e2f10", client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1-9999"},
	})
	var apiErr *client.APIError
	switch {
	case err == nil:
		fmt.Println("rendering")
	case client.IsNotFound(err):
		fmt.Println("no such job for this API key")
	case errors.As(err, &apiErr) && apiErr.Code == client.CodeInvalidConfig:
		fmt.Printf("fix %s: %s\n", apiErr.Field, apiErr.Message)
	default:
		fmt.Println(err)
	}
}
