package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// TestStorageQuotaRefusesUploadsOnTheLocalStore: with the local store, a
// PUT that would take the workspace past its storage quota is refused
// with 413 while it comes in, and once the quota is reached POST /uploads
// is refused; neither leaves a file or an upload behind.
func TestStorageQuotaRefusesUploadsOnTheLocalStore(t *testing.T) {
	f := startFarm(t)
	checkStorageQuota(t, f, []string{"--data-dir", f.DataDir}, false)
}

// TestStorageQuotaRefusesUploadsOnABucket: a bucket's presigned PUT takes
// any file, so the quota refuses it when the job is made, and removes it;
// once the quota is reached POST /uploads is refused, writing nothing.
func TestStorageQuotaRefusesUploadsOnABucket(t *testing.T) {
	d := newDistributed(t)
	f := d.api(t, "--workers", "0")
	checkStorageQuota(t, f, []string{"--database", d.database}, true)
}

func checkStorageQuota(t *testing.T, f *farm, db []string, bucket bool) {
	c := f.client("studio")
	ctx := testContext(t)
	setQuota := func(bytes int64) {
		t.Helper()
		args := append([]string{"workspaces", "set", "studio", "--max-storage-bytes", fmt.Sprint(bytes)}, db...)
		if out, err := exec.Command(binary(t), args...).CombinedOutput(); err != nil {
			t.Fatalf("renderfarm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	path := scene("cube.blend")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	size := info.Size()

	// Room for one file and a half: the first is taken.
	setQuota(size + size/2)
	slug, err := c.UploadFile(ctx, path, nil)
	if err != nil {
		t.Fatalf("the first upload, within the quota: %v", err)
	}
	if _, err := c.CreateJob(ctx, slug); err != nil {
		t.Fatalf("a job from the first upload: %v", err)
	}

	// The second file does not fit.
	ticket, err := c.CreateUpload(ctx, "cube.blend", "blend")
	if err != nil {
		t.Fatalf("POST /uploads with room left: %v", err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	err = c.Upload(ctx, ticket.UploadURL, file, size, nil)
	if bucket {
		if err != nil {
			t.Fatalf("the bucket refused the PUT itself: %v", err)
		}
		_, err = c.CreateJob(ctx, ticket.Slug)
	}
	quota := fmt.Sprintf("quota is %d bytes", size+size/2)
	var apiErr *client.APIError
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != client.CodeStorageQuotaExceeded ||
		!strings.Contains(apiErr.Message, quota) || !strings.Contains(apiErr.Message, fmt.Sprintf("take %d bytes", size)) ||
		!strings.Contains(apiErr.Message, "raise the quota") {
		t.Fatalf("a file past the quota: %v; want 413 STORAGE_QUOTA_EXCEEDED saying %q, the use and what to do", err, quota)
	}
	if left, err := f.Main().Objects().List(ctx, "uploads/"+ticket.Slug+"/"); err != nil || len(left) != 0 {
		t.Errorf("the refused file left %v (%v)", left, err)
	}
	if _, err := c.CreateJob(ctx, ticket.Slug); !client.HasCode(err, client.CodeUploadMissing) {
		t.Errorf("a job from the refused upload: %v, want UPLOAD_NOT_RECEIVED", err)
	}

	// At the quota, no new upload is taken, and nothing is written.
	setQuota(size)
	before := storedState(t, f)
	_, err = c.CreateUpload(ctx, "cube.blend", "blend")
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != client.CodeStorageQuotaExceeded ||
		!strings.Contains(apiErr.Message, fmt.Sprintf("quota is %d bytes", size)) || !strings.Contains(apiErr.Message, "no new upload") {
		t.Fatalf("POST /uploads at the quota: %v; want 413 STORAGE_QUOTA_EXCEEDED saying the quota", err)
	}
	if after := storedState(t, f); after != before {
		t.Errorf("a refused POST /uploads changed what is stored: %s, then %s", before, after)
	}

	// Raised, the quota takes uploads again.
	setQuota(0)
	if _, err := c.UploadFile(ctx, path, nil); err != nil {
		t.Errorf("an upload with no quota: %v", err)
	}
}

// storedState is the farm's uploads and objects, to show that a refused
// request wrote nothing.
func storedState(t *testing.T, f *farm) string {
	t.Helper()
	var uploads int
	if err := f.Main().Store().DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM uploads`).Scan(&uploads); err != nil {
		t.Fatal(err)
	}
	objects, err := f.Main().Objects().List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(objects))
	for i, o := range objects {
		keys[i] = fmt.Sprintf("%s:%d", o.Key, o.Size)
	}
	return fmt.Sprintf("%d uploads, objects %v", uploads, keys)
}
