package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestS3AddressingOnAWS checks the URLs for a bucket on AWS, which no test
// server can stand in for: virtual-host style on the region's endpoint,
// except for a bucket name with dots, which a wildcard certificate cannot
// cover. Presigning needs no network, so this runs anywhere.
func TestS3AddressingOnAWS(t *testing.T) {
	tests := []struct {
		bucket, region, want string
	}{
		{"my-farm-bucket", "eu-west-1", "https://my-farm-bucket.s3.eu-west-1.amazonaws.com/jobs/j1/frames.zip"},
		{"my-farm-bucket", "us-east-1", "https://my-farm-bucket.s3.us-east-1.amazonaws.com/jobs/j1/frames.zip"},
		{"my.farm.bucket", "eu-west-1", "https://s3.eu-west-1.amazonaws.com/my.farm.bucket/jobs/j1/frames.zip"},
	}
	for _, tc := range tests {
		s, err := newS3(S3Config{Bucket: tc.bucket, Region: tc.region, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"})
		if err != nil {
			t.Fatal(err)
		}
		for _, presign := range []func() (string, time.Time, error){
			func() (string, time.Time, error) { return s.PresignPut(t.Context(), "jobs/j1/frames.zip", time.Minute) },
			func() (string, time.Time, error) {
				return s.PresignGet(t.Context(), "jobs/j1/frames.zip", time.Minute, "frames.zip")
			},
		} {
			raw, _, err := presign()
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Scheme + "://" + u.Host + u.Path; got != tc.want {
				t.Errorf("bucket %s in %s: URL addresses %s, want %s", tc.bucket, tc.region, got, tc.want)
			}
			if cred := u.Query().Get("X-Amz-Credential"); !strings.Contains(cred, "/"+tc.region+"/s3/aws4_request") {
				t.Errorf("bucket %s in %s: X-Amz-Credential %q is not scoped to the region", tc.bucket, tc.region, cred)
			}
		}
	}
}

// TestS3CopyRefusesAReplacedSource: Copy copies only the version of the
// source whose size it checked. The test replaces the source between the
// check and the copy, which a client holding the upload URL could do.
func TestS3CopyRefusesAReplacedSource(t *testing.T) {
	s, bucket := testS3Internal(t)
	ctx := t.Context()
	s.beforeCopy = func() {
		if _, err := s.Put(ctx, "uploads/s1/scene.blend", strings.NewReader("replaced by a file over the limit"), 100); err != nil {
			t.Fatal(err)
		}
	}
	for _, single := range []bool{true, false} {
		if _, err := s.Put(ctx, "uploads/s1/scene.blend", strings.NewReader("small"), 100); err != nil {
			t.Fatal(err)
		}
		if single {
			s.maxSingleCopy = maxS3SingleCopy
		} else {
			s.maxSingleCopy, s.copyPartSize = 1, 5<<20
		}
		if _, err := s.Copy(ctx, "uploads/s1/scene.blend", "jobs/j1/input/scene.blend", 10); !errors.Is(err, ErrChanged) {
			t.Errorf("Copy (in one request: %v) of a source replaced after its size was checked: %v, want ErrChanged", single, err)
		}
		if _, err := s.Stat(ctx, "jobs/j1/input/scene.blend"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after the refused copy, the destination: %v, want ErrNotFound", err)
		}
	}
	for u := range s.client.ListIncompleteUploads(ctx, bucket, "", true) {
		t.Errorf("an incomplete upload was left behind: %+v", u)
	}
}

// testS3Internal is an S3 store on a bucket of its own on the test server,
// removed with its objects when the test ends.
func testS3Internal(t *testing.T) (*S3, string) {
	t.Helper()
	endpoint := os.Getenv("RENDERFARM_TEST_S3_ENDPOINT")
	if endpoint == "" {
		t.Skip("RENDERFARM_TEST_S3_ENDPOINT is not set: run scripts/test.sh, which starts an S3-compatible server (Versity Gateway) and sets it")
	}
	bucket := "renderfarm-test-" + strings.ToLower(rand.Text()[:16])
	cfg, err := ParseS3URL("s3://" + bucket + "?endpoint=" + url.QueryEscape(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for u := range s.client.ListIncompleteUploads(ctx, bucket, "", true) {
			s.client.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID)
		}
		for o := range s.client.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			s.client.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{})
		}
		s.client.RemoveBucket(ctx, bucket)
	})
	return s, bucket
}

// TestS3CopyInParts copies an object part by part (UploadPartCopy), the way
// an object over 5 GiB is copied, with the thresholds lowered so that a
// 13 MiB object takes three parts on the test server.
func TestS3CopyInParts(t *testing.T) {
	s, bucket := testS3Internal(t)
	ctx := t.Context()
	s.maxSingleCopy, s.copyPartSize = 6<<20, 5<<20

	data := make([]byte, 13<<20)
	rand.Read(data)
	if _, err := s.Put(ctx, "uploads/s1/scene.blend", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	info, err := s.Copy(ctx, "uploads/s1/scene.blend", "jobs/j1/input/scene.blend", int64(len(data)))
	if err != nil {
		t.Fatalf("Copy in parts: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Copy = %+v, want %d bytes", info, len(data))
	}
	r, err := s.Get(ctx, "jobs/j1/input/scene.blend")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the copy differs from the source (%d bytes, %v)", len(got), err)
	}
	for u := range s.client.ListIncompleteUploads(ctx, bucket, "", true) {
		t.Errorf("an incomplete upload was left behind: %+v", u)
	}
}
