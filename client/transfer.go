package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Upload sends size bytes from r to a presigned uploadURL (from
// [UploadTicket.UploadURL]) as one plain PUT, as `curl -T FILE URL` would:
// a Content-Length and the body, with no Content-Type or other header that a
// presigned URL could have signed differently. The API key is left out on
// purpose: the URL may point at an object store that is not the farm.
//
// r must yield exactly size bytes; fewer or more fail the upload, and r is
// not read at all when size is 0. progress,
// when not nil, is called as the body is sent with the bytes sent so far and
// the total, ending with sent == total on success. It may be called from a
// goroutine other than the caller's, and should return quickly.
func (c *Client) Upload(ctx context.Context, uploadURL string, r io.Reader, size int64, progress func(sent, total int64)) error {
	target, err := c.resolve(uploadURL)
	if err != nil {
		return fmt.Errorf("upload: bad upload URL: %w", redactErr(err))
	}
	if size < 0 {
		return fmt.Errorf("upload to %s: size %d is negative", redactURL(target), size)
	}

	var body io.Reader = http.NoBody
	if size > 0 {
		body = r
		if progress != nil {
			pr := &progressReader{r: r, total: size, progress: progress}
			// net/http may still read the body after Do returns (on an
			// early error answer); stop reporting then, so the caller never
			// sees progress after Upload has returned.
			defer pr.stop()
			body = pr
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, body)
	if err != nil {
		return fmt.Errorf("upload to %s: %w", redactURL(target), redactErr(err))
	}
	// A reader of unknown type gives no length by itself; presigned PUTs
	// need one, and chunked encoding is refused by S3.
	req.ContentLength = size
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", redactErr(err))
	}
	defer drainAndClose(resp.Body)
	if !isSuccess(resp.StatusCode) {
		return fmt.Errorf("upload to %s: %w", redactURL(target), readAPIError(resp))
	}
	if size == 0 && progress != nil {
		progress(0, 0)
	}
	return nil
}

// UploadFile uploads the .blend or .zip file at path and returns the slug to
// pass to [Client.CreateJob]. The file type is taken from the extension
// (case does not matter), because the server requires the two to match.
// progress is as for [Client.Upload]. Errors name the path.
func (c *Client) UploadFile(ctx context.Context, path string, progress func(sent, total int64)) (slug string, err error) {
	fileType, err := FileTypeOf(path)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err) // the *PathError names the path
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("upload %s: not a regular file", path)
	}

	ticket, err := c.CreateUpload(ctx, filepath.Base(path), fileType)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", path, err)
	}
	if err := c.Upload(ctx, ticket.UploadURL, f, info.Size(), progress); err != nil {
		return "", fmt.Errorf("upload %s: %w", path, err)
	}
	return ticket.Slug, nil
}

// FileTypeOf returns the upload file type for a file name: [FileTypeBlend]
// for .blend and [FileTypeZip] for .zip, whatever their case. Other names
// are an error, since the server accepts nothing else.
func FileTypeOf(name string) (string, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".blend":
		return FileTypeBlend, nil
	case ".zip":
		return FileTypeZip, nil
	}
	return "", errors.New("the file must end in .blend or .zip (a project zip)")
}

// DownloadFile fetches a presigned URL (from [Downloads]) into the file at
// path and returns the number of bytes written. It streams into a temporary
// file beside path and renames it into place only once the whole body has
// arrived, so path never holds a partial file: a failed or canceled
// download leaves an existing file at path as it was. When the server gives
// a Content-Length, a body of another length is an error. The directory of
// path must exist. Like [Client.Upload], it sends no API key.
func (c *Client) DownloadFile(ctx context.Context, fileURL, path string) (int64, error) {
	target, err := c.resolve(fileURL)
	if err != nil {
		return 0, fmt.Errorf("download to %s: bad URL: %w", path, redactErr(err))
	}
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("download %s to %s: %w", redactURL(target), path, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fail(redactErr(err))
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download to %s: %w", path, redactErr(err))
	}
	defer drainAndClose(resp.Body)
	if !isSuccess(resp.StatusCode) {
		return fail(readAPIError(resp))
	}

	// The temporary file sits in the same directory so that the rename is
	// atomic (same file system), and starts with a dot so that tools
	// watching the directory for frames skip it.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	n, err := io.Copy(tmp, resp.Body)
	if err != nil {
		if resp.ContentLength >= 0 {
			return fail(fmt.Errorf("got %d of %d bytes: %w", n, resp.ContentLength, redactErr(err)))
		}
		return fail(redactErr(err))
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fail(fmt.Errorf("got %d bytes, the server announced %d", n, resp.ContentLength))
	}
	// CreateTemp makes the file private; a downloaded frame should be as
	// readable as any file the user saves.
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	// Sync before rename, or a crash could leave a complete-looking name
	// over incomplete data.
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	done = true
	return n, nil
}

// progressReader reports how much of a body has been read, which for an
// upload is how much has been handed to the connection.
type progressReader struct {
	r        io.Reader
	total    int64
	progress func(sent, total int64)

	mu      sync.Mutex
	sent    int64
	stopped bool
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.mu.Lock()
		p.sent += int64(n)
		if !p.stopped {
			p.progress(p.sent, p.total)
		}
		p.mu.Unlock()
	}
	return n, err
}

// stop waits for a report in flight to finish and prevents any more.
func (p *progressReader) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
}
