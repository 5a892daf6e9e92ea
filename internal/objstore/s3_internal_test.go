package objstore

import (
	"net/url"
	"strings"
	"testing"
	"time"
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
