// Package testbackends gives tests and benchmark programs databases and
// buckets of their own on the real PostgreSQL and S3-compatible servers
// that scripts/services.sh starts, named by RENDERFARM_TEST_POSTGRES and
// RENDERFARM_TEST_S3_ENDPOINT (credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY). Every database and bucket it makes is removed by
// the function that comes with it.
package testbackends

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The environment variables that name the servers.
const (
	PostgresEnv   = "RENDERFARM_TEST_POSTGRES"
	S3EndpointEnv = "RENDERFARM_TEST_S3_ENDPOINT"
)

// ErrNotConfigured says that the environment names no server.
var ErrNotConfigured = errors.New(PostgresEnv + " and " + S3EndpointEnv + " name the PostgreSQL and S3 servers; start them with scripts/services.sh (start_postgres, start_s3), which sets them, or run scripts/test.sh")

// Postgres is the PostgreSQL server, reached through its admin database.
type Postgres struct {
	admin    *sql.DB
	adminURL url.URL
}

// OpenPostgres connects to the server RENDERFARM_TEST_POSTGRES names.
func OpenPostgres() (*Postgres, error) {
	raw := os.Getenv(PostgresEnv)
	if raw == "" {
		return nil, ErrNotConfigured
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PostgresEnv, err)
	}
	admin, err := sql.Open("pgx", raw)
	if err != nil {
		return nil, err
	}
	return &Postgres{admin: admin, adminURL: *u}, nil
}

// Close closes the admin connection.
func (p *Postgres) Close() error { return p.admin.Close() }

// CreateDatabase makes an empty database (a copy of template, if not "")
// and answers its URL, and drop, which removes it and whatever
// connections are still open on it.
func (p *Postgres) CreateDatabase(ctx context.Context, template string) (dsn string, drop func() error, err error) {
	name := "renderfarm_test_" + strings.ToLower(rand.Text())
	query := `CREATE DATABASE ` + name
	if template != "" {
		query += ` TEMPLATE ` + template
	}
	if _, err := p.admin.ExecContext(ctx, query); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u := p.adminURL
	u.Path = "/" + name
	return u.String(), func() error {
		_, err := p.admin.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		return err
	}, nil
}

// S3 is the S3-compatible server.
type S3 struct {
	client   *minio.Client
	endpoint string
	region   string
}

// OpenS3 connects to the server RENDERFARM_TEST_S3_ENDPOINT names.
func OpenS3() (*S3, error) {
	endpoint := os.Getenv(S3EndpointEnv)
	if endpoint == "" {
		return nil, ErrNotConfigured
	}
	eu, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", S3EndpointEnv, err)
	}
	region := cmp.Or(os.Getenv("AWS_REGION"), "us-east-1")
	client, err := minio.New(eu.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: eu.Scheme == "https", Region: region})
	if err != nil {
		return nil, err
	}
	return &S3{client: client, endpoint: endpoint, region: region}, nil
}

// Bucket is a bucket of one test or benchmark.
type Bucket struct {
	s3   *S3
	Name string
}

// CreateBucket makes an empty bucket.
func (s *S3) CreateBucket(ctx context.Context) (*Bucket, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "renderfarm-test-" + hex.EncodeToString(suffix)
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.region}); err != nil {
		return nil, fmt.Errorf("make bucket: %w", err)
	}
	return &Bucket{s3: s, Name: name}, nil
}

// Storage is the --storage URL of the bucket, its keys under prefix (none
// if "").
func (b *Bucket) Storage(prefix string) string {
	s := "s3://" + b.Name + "?endpoint=" + url.QueryEscape(b.s3.endpoint) + "&region=" + b.s3.region
	if prefix != "" {
		s += "&prefix=" + url.QueryEscape(prefix)
	}
	return s
}

// Remove empties the bucket and removes it.
func (b *Bucket) Remove() error {
	ctx := context.Background()
	for obj := range b.s3.client.ListObjects(ctx, b.Name, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			return obj.Err
		}
		if err := b.s3.client.RemoveObject(ctx, b.Name, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return err
		}
	}
	return b.s3.client.RemoveBucket(ctx, b.Name)
}

// skipOrFail skips a test when the servers are not configured, except in
// CI, which must run everything.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotConfigured) && os.Getenv("CI") == "" {
		t.Skip("no PostgreSQL or S3 server to test on: " + err.Error())
	}
	t.Fatal(err)
}

// PostgresDatabase is a fresh database of the test's own, dropped when
// the test ends, as a URL; a copy of template if it is not "". Without a
// server the test is skipped, except in CI.
func PostgresDatabase(t testing.TB, template string) string {
	t.Helper()
	p, err := OpenPostgres()
	if err != nil {
		skipOrFail(t, err)
	}
	dsn, drop, err := p.CreateDatabase(t.Context(), template)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		p.Close()
	})
	return dsn
}

// S3Bucket is a fresh bucket of the test's own, removed when the test
// ends. Without a server the test is skipped, except in CI.
func S3Bucket(t testing.TB) *Bucket {
	t.Helper()
	s, err := OpenS3()
	if err != nil {
		skipOrFail(t, err)
	}
	b, err := s.CreateBucket(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Remove(); err != nil {
			t.Errorf("remove test bucket %s: %v", b.Name, err)
		}
	})
	return b
}
