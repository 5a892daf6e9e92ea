package service

import (
	"context"
	"errors"
	"math"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Progress reports a job's frames, at any status. Clients poll it, so it
// reads the job's status and frames alone (store.JobProgress), not the
// whole job as loadJob does.
func (s *Service) Progress(ctx context.Context, p farm.Principal, id string) (*farm.Progress, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, farm.NotFound("job", id)
	}
	read, err := s.store.JobProgress(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, farm.NotFound("job", id)
	}
	if err != nil {
		return nil, err
	}
	pr := progressOf(id, read.Status, read.Frames)
	pr.WaitingFor = read.WaitingFor
	return pr, nil
}

// RunningProgress reports every job of the workspace that is being worked on.
func (s *Service) RunningProgress(ctx context.Context, p farm.Principal) ([]farm.Progress, error) {
	jobs, err := s.store.JobsWithStatus(ctx, p.WorkspaceID, farm.StatusValidating, farm.StatusBooting, farm.StatusRendering, farm.StatusFinalizing)
	if err != nil {
		return nil, err
	}
	out := []farm.Progress{}
	for _, job := range jobs {
		frames, err := s.store.FrameProgressOfJob(ctx, job.ID)
		if err != nil {
			return nil, err
		}
		pr := progressOf(job.ID, job.Status, frames)
		if pr.WaitingFor, err = s.store.WaitingFor(ctx, job.ID); err != nil {
			return nil, err
		}
		out = append(out, *pr)
	}
	return out, nil
}

// progressOf counts a job's frames and estimates the time left.
func progressOf(jobID string, status farm.Status, frames []farm.FrameProgress) *farm.Progress {
	pr := &farm.Progress{JobID: jobID, Status: status, FramesTotal: len(frames), Frames: frames}
	if pr.Frames == nil {
		pr.Frames = []farm.FrameProgress{}
	}
	var renderSeconds float64
	for _, f := range frames {
		switch f.Status {
		case farm.FrameCompleted:
			pr.FramesCompleted++
			renderSeconds += f.RenderSeconds
		case farm.FrameRendering:
			pr.FramesRendering++
		case farm.FrameFailed:
			pr.FramesFailed++
		}
	}
	switch {
	case status == farm.StatusCompleted:
		pr.PercentComplete = 100
	case pr.FramesTotal > 0:
		pr.PercentComplete = math.Round(1000*float64(pr.FramesCompleted)/float64(pr.FramesTotal)) / 10
	}
	if status.IsRunning() && pr.FramesCompleted > 0 && pr.FramesTotal > 0 {
		// Frames left times the mean frame time, shared by the workers that
		// are rendering now.
		parallel := max(1, pr.FramesRendering)
		eta := float64(pr.FramesTotal-pr.FramesCompleted) * renderSeconds / float64(pr.FramesCompleted) / float64(parallel)
		eta = math.Round(eta*10) / 10
		pr.EtaSeconds = &eta
	}
	return pr
}

// Downloads lists presigned URLs of a job's frames as they land, and of
// the zip and preview video once finalizing made them.
func (s *Service) Downloads(ctx context.Context, p farm.Principal, id string) (*farm.Downloads, error) {
	job, err := s.loadJob(ctx, p, id, s.store.GetJob)
	if err != nil {
		return nil, err
	}
	d := &farm.Downloads{Frames: []string{}, CompositeNodes: []string{}, FrameOutputs: []farm.FileOutput{}, CompositeNodeOutputs: []farm.FileOutput{}}
	if job.Output.IsDeletedForClient {
		return d, nil
	}
	frames, err := s.store.FramesOfJob(ctx, job.ID)
	if err != nil {
		return nil, err
	}
	for _, f := range frames {
		if f.Status != farm.FrameCompleted || f.ObjectKey == "" {
			continue
		}
		out, err := s.fileOutput(ctx, f.ObjectKey, f.SizeBytes)
		if err != nil {
			return nil, err
		}
		frame := f.Frame
		out.Frame = &frame
		d.Frames = append(d.Frames, out.URL)
		d.FrameOutputs = append(d.FrameOutputs, out)
	}
	if key := job.Files.FramesZipKey; key != "" {
		out, err := s.fileOutput(ctx, key, job.Files.FramesZipSize)
		if err != nil {
			return nil, err
		}
		d.Transforms.FramesZip = &out.URL
		d.Transforms.FramesZipOutputs = &out
	}
	if key := job.Files.VideoKey; key != "" {
		out, err := s.fileOutput(ctx, key, job.Files.VideoSize)
		if err != nil {
			return nil, err
		}
		d.Transforms.Video = &farm.VideoOutput{URL: out.URL, FileName: out.FileName, Codec: "h264", FPS: job.Files.VideoFPS, SizeBytes: job.Files.VideoSize}
	}
	return d, nil
}

func (s *Service) fileOutput(ctx context.Context, key string, size int64) (farm.FileOutput, error) {
	name := farm.DownloadName(key)
	url, _, err := s.objects.PresignGet(ctx, key, s.cfg.DownloadURLTTL, name)
	if err != nil {
		return farm.FileOutput{}, err
	}
	return farm.FileOutput{URL: url, FileName: name, RelativePath: name, SizeBytes: size}, nil
}
