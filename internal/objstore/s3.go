package objstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// DefaultS3PartSize is the part size of multipart uploads when
// S3Config.PartSize is not set. Put holds one part in memory at a time, so
// this is also its memory cost per upload in flight. 16 MiB keeps that
// modest while allowing objects up to 10,000 parts, about 156 GiB, far more
// than a job's frames.zip.
const DefaultS3PartSize int64 = 16 << 20

const (
	// S3's own bounds: every part but the last is at least 5 MiB, a part is
	// at most 5 GiB, and an upload has at most 10,000 parts.
	minS3PartSize int64 = 5 << 20
	maxS3PartSize int64 = 5 << 30
	maxS3Parts          = 10_000

	defaultS3Region = "us-east-1"

	// awsS3Host is the endpoint when none is given; the client swaps in the
	// host of the configured region.
	awsS3Host = "s3.amazonaws.com"

	// s3CheckTimeout bounds NewS3's check, so a wrong endpoint stops the
	// start with a message instead of hanging it.
	s3CheckTimeout = 30 * time.Second

	// s3AbortTimeout bounds the clean-up of a failed multipart upload,
	// which runs even after the caller's context has ended.
	s3AbortTimeout = time.Minute

	// maxS3SingleCopy is the largest object one CopyObject request may
	// copy; a larger one is copied part by part (UploadPartCopy).
	maxS3SingleCopy int64 = 5 << 30

	// s3CopyPartSize is the size of the parts of a multipart copy. Parts
	// are copied by the server, so their size costs this process no
	// memory; 1 GiB keeps a copy to a few requests and allows objects up
	// to 10,000 GiB.
	s3CopyPartSize int64 = 1 << 30
)

// s3URLExamples ends every complaint about a storage URL, so that the fix is
// on screen.
const s3URLExamples = "for example s3://renderfarm?endpoint=http://127.0.0.1:9000&region=us-east-1 " +
	"for an S3-compatible server, or s3://my-farm-bucket?region=eu-west-1 for AWS S3"

// S3Config configures an S3 store. ParseS3URL builds one from a storage URL
// and the standard AWS environment variables.
type S3Config struct {
	// Bucket holds the objects. It must exist: renderfarm never creates
	// buckets, whose placement, lifecycle and access are the operator's.
	Bucket string

	// Endpoint is the base URL of an S3-compatible server, such as
	// "http://127.0.0.1:9000". Objects are then addressed path-style
	// (ENDPOINT/BUCKET/KEY), which needs no wildcard DNS or certificate.
	// Empty means AWS S3, addressed virtual-host style
	// (BUCKET.s3.REGION.amazonaws.com) except for bucket names with dots,
	// which a wildcard certificate cannot cover.
	Endpoint string

	// Region signs the requests; "" means us-east-1. Most S3-compatible
	// servers accept any region, AWS insists on the bucket's own.
	Region string

	// Prefix, when set, is prepended to every key ("farm1/" stores
	// "jobs/42/frames.zip" as "farm1/jobs/42/frames.zip"), so that several
	// farms or other data can share a bucket. A missing trailing "/" is
	// added.
	Prefix string

	// The credentials. SessionToken is only for temporary credentials.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// PartSize is the size of the parts of a multipart upload, between
	// 5 MiB and 5 GiB; 0 means DefaultS3PartSize.
	PartSize int64
}

// String describes the store without its credentials, so that a config can
// be logged as it is.
func (c S3Config) String() string {
	q := url.Values{}
	if c.Endpoint != "" {
		q.Set("endpoint", c.Endpoint)
	}
	if c.Region != "" {
		q.Set("region", c.Region)
	}
	if c.Prefix != "" {
		q.Set("prefix", c.Prefix)
	}
	s := "s3://" + c.Bucket
	if len(q) > 0 {
		// Unescaped, as an operator would type it; the values are URLs
		// and keys, which need no escaping to be read.
		s += "?" + unescapeQuery(q.Encode())
	}
	return s
}

// GoString keeps the credentials out of %#v too.
func (c S3Config) GoString() string { return "objstore.S3Config(" + c.String() + ")" }

func unescapeQuery(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// ParseS3URL reads a storage URL of the form
//
//	s3://BUCKET?endpoint=URL&region=REGION&prefix=PREFIX
//
// where every parameter is optional: without endpoint the bucket is on AWS
// S3; region falls back to AWS_REGION, then AWS_DEFAULT_REGION, then
// us-east-1; prefix places every key under a folder of the bucket. The
// credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, never from the URL, so that the URL can be shown in
// logs and process listings.
func ParseS3URL(raw string) (S3Config, error) {
	return parseS3URL(raw, os.Getenv)
}

func parseS3URL(raw string, env func(string) string) (S3Config, error) {
	shown := strconv.Quote(raw)
	bad := func(format string, args ...any) (S3Config, error) {
		return S3Config{}, fmt.Errorf("objstore: storage URL %s: %s; %s", shown, fmt.Sprintf(format, args...), s3URLExamples)
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if strings.Contains(raw, "@") {
			shown = "(not shown: it may hold a password)"
		}
		return bad("it is not a URL: %v", err)
	}
	if u.User != nil {
		shown = strconv.Quote(u.Redacted())
		return bad("credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
	}
	switch {
	case u.Scheme != "s3" || u.Opaque != "":
		return bad("it must start with s3:// followed by the bucket name")
	case u.Host == "":
		return bad("it names no bucket")
	case u.Port() != "":
		return bad("a bucket has no port; give the server's address as endpoint=http://HOST:PORT")
	case u.Path != "" && u.Path != "/":
		return bad("it has a path (%s); give a key prefix inside the bucket as prefix=%s", u.Path, strings.Trim(u.Path, "/"))
	case u.Fragment != "":
		return bad("it has a fragment (#%s)", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("its query is malformed: %v", err)
	}
	cfg := S3Config{
		Bucket:          u.Host,
		AccessKeyID:     env("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: env("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    env("AWS_SESSION_TOKEN"),
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		if len(v) > 1 {
			return bad("it gives %s more than once", k)
		}
		if v[0] == "" {
			// Most likely a variable that was not set; guessing what
			// was meant could send the farm's files elsewhere.
			return bad("it gives %s with no value; leave the parameter out instead", k)
		}
		switch k {
		case "endpoint":
			cfg.Endpoint = v[0]
		case "region":
			cfg.Region = v[0]
		case "prefix":
			cfg.Prefix = v[0]
		default:
			return bad("unknown parameter %q (the parameters are endpoint, region and prefix)", k)
		}
	}
	if cfg.Region == "" {
		cfg.Region = cmp.Or(env("AWS_REGION"), env("AWS_DEFAULT_REGION"), defaultS3Region)
	}
	if cfg, err = cfg.normalize(); err != nil {
		return bad("%v", err)
	}
	return cfg, nil
}

// normalize checks everything about the config that can be checked without
// the network, and fills in the defaults.
func (c S3Config) normalize() (S3Config, error) {
	if c.Bucket == "" {
		return c, errors.New("no bucket")
	}
	if c.Endpoint == "" {
		// AWS's rules, which its virtual-host addressing relies on.
		if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
			return c, fmt.Errorf("%q is not a valid AWS S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", c.Bucket)
		}
	} else {
		if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
			return c, fmt.Errorf("%q is not a valid bucket name: 3 to 63 letters, digits, dots, hyphens or underscores", c.Bucket)
		}
		endpoint, err := normalizeS3Endpoint(c.Endpoint)
		if err != nil {
			return c, err
		}
		c.Endpoint = endpoint
	}
	if c.Region == "" {
		c.Region = defaultS3Region
	}
	if c.Prefix != "" {
		p := strings.TrimSuffix(c.Prefix, "/")
		if reason := keyProblem(p); reason != "" {
			return c, fmt.Errorf("prefix %q cannot start a key: %s", c.Prefix, reason)
		}
		c.Prefix = p + "/"
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultS3PartSize
	}
	if c.PartSize < minS3PartSize || c.PartSize > maxS3PartSize {
		return c, fmt.Errorf("part size %d is out of S3's range of 5 MiB to 5 GiB", c.PartSize)
	}
	return c, nil
}

func normalizeS3Endpoint(raw string) (string, error) {
	e, err := url.Parse(raw)
	if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.Opaque != "" {
		return "", fmt.Errorf("endpoint %q must be an http or https URL such as http://127.0.0.1:9000", raw)
	}
	if e.User != nil || e.RawQuery != "" || e.Fragment != "" || (e.Path != "" && e.Path != "/") {
		return "", fmt.Errorf("endpoint %q must be only the server's scheme, host and port, such as https://s3.example.com:9000 (the bucket comes after s3://)", e.Redacted())
	}
	return e.Scheme + "://" + e.Host, nil
}

// S3 is a Store in an S3-compatible bucket, for the distributed shape of
// renderfarm: every process that shares the bucket sees the same objects,
// and presigned URLs point straight at the bucket's endpoint, so the bytes
// of uploads and downloads never pass through renderfarm. It is safe for
// concurrent use.
type S3 struct {
	client   *minio.Core
	bucket   string
	prefix   string
	endpoint string // for messages: where the bucket is
	onAWS    bool
	region   string
	partSize int64
	// maxSingleCopy and copyPartSize are maxS3SingleCopy and
	// s3CopyPartSize; tests lower them to copy small objects in parts.
	maxSingleCopy, copyPartSize int64
	// beforeCopy, when a test sets it, runs between Copy's check of the
	// source and the copy itself.
	beforeCopy func()
	// parts recycles the part buffers of Put, so that storing frame after
	// frame does not allocate a fresh part each time.
	parts sync.Pool
}

var _ Opener = (*S3)(nil)

// NewS3 connects to the bucket and checks at once that it exists and that
// the credentials are accepted, so that a mistake stops the start with a
// message saying which part is wrong rather than failing the first upload.
// The check lists at most one object, so it also proves read access.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	s, err := newS3(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// newS3 builds the store without touching the network.
func newS3(cfg S3Config) (*S3, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("objstore: S3 store %s: %w", cfg, err)
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		var missing []string
		if cfg.AccessKeyID == "" {
			missing = append(missing, "AWS_ACCESS_KEY_ID")
		}
		if cfg.SecretAccessKey == "" {
			missing = append(missing, "AWS_SECRET_ACCESS_KEY")
		}
		return nil, fmt.Errorf("objstore: S3 store %s: no credentials: set %s in the environment", cfg, strings.Join(missing, " and "))
	}

	host, secure, lookup := awsS3Host, true, minio.BucketLookupAuto
	endpoint := "https://s3." + cfg.Region + ".amazonaws.com"
	if cfg.Endpoint != "" {
		e, _ := url.Parse(cfg.Endpoint) // checked by normalize
		host, secure, lookup = e.Host, e.Scheme == "https", minio.BucketLookupPath
		endpoint = cfg.Endpoint
	}
	client, err := minio.NewCore(host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure: secure,
		// A known region also spares a bucket-location request before
		// the first operation, and keeps presigning offline.
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: S3 store %s: %w", cfg, err)
	}
	// The plain regional endpoint, the one messages name, rather than the
	// dual-stack one: a client on a network with broken IPv6 must still
	// reach the bucket.
	client.SetS3EnableDualstack(false)
	s := &S3{
		client:   client,
		bucket:   cfg.Bucket,
		prefix:   cfg.Prefix,
		endpoint: endpoint,
		onAWS:    cfg.Endpoint == "",
		region:   cfg.Region,
		partSize: cfg.PartSize,

		maxSingleCopy: maxS3SingleCopy,
		copyPartSize:  s3CopyPartSize,
	}
	s.parts.New = func() any {
		b := make([]byte, s.partSize)
		return &b
	}
	return s, nil
}

// check lists at most one object of the store, which fails if the bucket
// is missing, the credentials are refused or the endpoint is unreachable,
// and explains which.
func (s *S3) check(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, s3CheckTimeout)
	defer cancel()
	noOwner := false
	var err error
	for o := range s.client.ListObjectsIter(cctx, s.bucket, minio.ListObjectsOptions{
		Prefix: s.prefix, Recursive: true, MaxKeys: 1, FetchOwner: &noOwner,
	}) {
		err = o.Err
		break
	}
	if err == nil {
		// The listing ends silently, without an error, when its context
		// does.
		err = cctx.Err()
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("objstore: checking bucket %q at %s: %w", s.bucket, s.endpoint, ctx.Err())
	}

	if resp, ok := errors.AsType[minio.ErrorResponse](err); ok {
		switch resp.Code {
		case "NoSuchBucket":
			return fmt.Errorf("objstore: bucket %q does not exist at %s; create it with `%s` (or in your provider's console), or fix the bucket name",
				s.bucket, s.endpoint, s.makeBucketCommand())
		case "AccessDenied":
			// Either the credentials are wrong or they lack a permission
			// on this bucket; S3 does not say which.
			return fmt.Errorf("objstore: the credentials were refused by %s (%s: %s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and that they may list, read, write and delete objects in bucket %q",
				s.endpoint, resp.Code, resp.Message, s.bucket)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
			"InvalidSecurity", "InvalidClientTokenId",
			"XAdminUserNotFound": // Versity Gateway's answer to an unknown access key
			return fmt.Errorf("objstore: the credentials were refused by %s (%s: %s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
				s.endpoint, resp.Code, resp.Message)
		case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException":
			where := ""
			if resp.Region != "" {
				where = " (it is in " + resp.Region + ")"
			}
			return fmt.Errorf("objstore: bucket %q is not in region %s at %s%s: set region= in the storage URL to the bucket's region (%s: %s)",
				s.bucket, s.region, s.endpoint, where, resp.Code, resp.Message)
		}
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("objstore: the credentials were refused by %s (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
				s.endpoint, resp.Error())
		}
		return fmt.Errorf("objstore: checking bucket %q at %s: %w", s.bucket, s.endpoint, err)
	}
	if _, ok := errors.AsType[net.Error](err); ok || errors.Is(err, context.DeadlineExceeded) {
		// The request's URL adds nothing to the dial error.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("objstore: %s is unreachable: %w; check the endpoint in the storage URL and that the server is running", s.endpoint, err)
	}
	return fmt.Errorf("objstore: checking bucket %q at %s: %w", s.bucket, s.endpoint, err)
}

func (s *S3) makeBucketCommand() string {
	if s.onAWS {
		return fmt.Sprintf("aws s3 mb s3://%s --region %s", s.bucket, s.region)
	}
	return fmt.Sprintf("aws s3 mb s3://%s --endpoint-url %s --region %s", s.bucket, s.endpoint, s.region)
}

// checkKey is ValidateKey, plus S3's length limit on the key as stored,
// prefix included.
func (s *S3) checkKey(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(s.prefix)+len(key) > MaxKeyLen {
		return fmt.Errorf("%w (%d bytes): with the store's prefix %q it is longer than %d bytes", ErrInvalidKey, len(key), s.prefix, MaxKeyLen)
	}
	return nil
}

// PresignPut implements Store. The URL is signed with SigV4 over the host
// header only, so a client that sends any Content-Type, or none, succeeds.
func (s *S3) PresignPut(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	return s.presign(ctx, http.MethodPut, key, ttl, nil)
}

// PresignGet implements Store. The download name travels as
// response-content-disposition, and the type as response-content-type,
// taken from the key as the local store does: whatever Content-Type the
// uploader sent is not what a browser gets. Both are signed.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration, downloadName string) (string, time.Time, error) {
	if err := checkDownloadName(downloadName); err != nil {
		return "", time.Time{}, err
	}
	q := url.Values{}
	q.Set("response-content-type", contentType(key))
	if downloadName != "" {
		if cd := mime.FormatMediaType("attachment", map[string]string{"filename": downloadName}); cd != "" {
			q.Set("response-content-disposition", cd)
		}
	}
	return s.presign(ctx, http.MethodGet, key, ttl, q)
}

func (s *S3) presign(ctx context.Context, method, key string, ttl time.Duration, q url.Values) (string, time.Time, error) {
	if err := s.checkKey(key); err != nil {
		return "", time.Time{}, err
	}
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	if err := checkTTL(ttl); err != nil {
		return "", time.Time{}, err
	}
	// SigV4 counts whole seconds from the start of the signing second, so
	// a second more keeps the promise that the URL lives at least ttl,
	// within S3's limit of seven days.
	secs := min(int64((ttl+time.Second-1)/time.Second)+1, int64(MaxPresignTTL/time.Second))
	u, err := s.client.Presign(ctx, method, s.bucket, s.prefix+key, time.Duration(secs)*time.Second, q)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("objstore: presign %s %s: %w", method, key, err)
	}
	// What S3 enforces is the signing time plus X-Amz-Expires; report
	// exactly that.
	expiresAt := time.Now().Add(time.Duration(secs) * time.Second)
	if signed, err := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date")); err == nil {
		expiresAt = signed.Add(time.Duration(secs) * time.Second)
	}
	return u.String(), expiresAt.UTC(), nil
}

// Put implements Store. The body is read one part at a time: an object
// that fits in one part goes up in a single PUT, a larger one as a
// multipart upload, so memory stays at one part whatever the size. A
// failed or canceled multipart upload, or one that runs past maxBytes, is
// aborted, so no hidden parts are left behind and the previous object, if
// any, stays as it was.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error) {
	if err := s.checkKey(key); err != nil {
		return 0, err
	}
	if err := checkMaxBytes(maxBytes); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	buf := s.parts.Get().(*[]byte)
	defer s.parts.Put(buf)
	n, err := s.put(ctx, key, &limitReader{r: ctxReader{ctx, r}, max: maxBytes}, *buf)
	if err != nil {
		return 0, fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return n, nil
}

func (s *S3) put(ctx context.Context, key string, r io.Reader, buf []byte) (int64, error) {
	name := s.prefix + key
	opts := minio.PutObjectOptions{ContentType: contentType(key)}
	n, err := io.ReadFull(r, buf)
	switch err {
	case nil:
		return s.putMultipart(ctx, name, r, buf, opts)
	case io.EOF, io.ErrUnexpectedEOF:
		// The whole body is in hand: a plain PUT, which S3 applies
		// whole or not at all.
		_, err = s.client.PutObject(ctx, s.bucket, name, bytes.NewReader(buf[:n]), int64(n), "", "", opts)
		return int64(n), err
	default:
		return 0, err
	}
}

// putMultipart uploads buf, which is full, then the rest of r, one part at
// a time through buf.
func (s *S3) putMultipart(ctx context.Context, name string, r io.Reader, buf []byte, opts minio.PutObjectOptions) (total int64, err error) {
	id, err := s.client.NewMultipartUpload(ctx, s.bucket, name, opts)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			// Even when ctx has ended: until aborted, the parts stay in
			// the bucket, invisible to List yet taking space.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s3AbortTimeout)
			defer cancel()
			s.client.AbortMultipartUpload(actx, s.bucket, name, id)
		}
	}()

	var parts []minio.CompletePart
	n := len(buf)
	for num := 1; ; num++ {
		var part minio.ObjectPart
		part, err = s.client.PutObjectPart(ctx, s.bucket, name, id, num, bytes.NewReader(buf[:n]), int64(n), minio.PutObjectPartOptions{})
		if err != nil {
			return total, err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: part.ETag})
		total += int64(n)
		if n < len(buf) {
			break // a short part is the last one
		}
		n, err = io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return total, err
		}
		if num == maxS3Parts {
			return total, fmt.Errorf("the object is larger than %d parts of %d MiB, the most one upload can hold at this part size", maxS3Parts, len(buf)>>20)
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, s.bucket, name, id, parts, opts)
	return total, err
}

// Copy implements Store with S3's server-side copy: CopyObject up to
// 5 GiB, a multipart copy (UploadPartCopy) beyond. Only the version of src
// whose size was checked is copied: if src is replaced meanwhile, S3
// refuses the copy (its ETag no longer matches) and nothing is stored.
func (s *S3) Copy(ctx context.Context, src, dst string, maxBytes int64) (Info, error) {
	if err := s.checkKey(src); err != nil {
		return Info{}, err
	}
	if err := s.checkKey(dst); err != nil {
		return Info{}, err
	}
	if err := checkMaxBytes(maxBytes); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+src, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.objectError("copy", src, err)
	}
	if oi.Size > maxBytes {
		return Info{}, fmt.Errorf("objstore: copy %s: %w: it holds %d bytes, the limit is %d", src, ErrTooLarge, oi.Size, maxBytes)
	}
	sameVersion := map[string]string{"x-amz-copy-source-if-match": `"` + strings.Trim(oi.ETag, `"`) + `"`}
	if s.beforeCopy != nil {
		s.beforeCopy()
	}
	if oi.Size <= s.maxSingleCopy {
		_, err = s.client.CopyObject(ctx, s.bucket, s.prefix+src, s.bucket, s.prefix+dst, sameVersion, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	} else {
		err = s.copyMultipart(ctx, s.prefix+src, s.prefix+dst, oi.Size, sameVersion, minio.PutObjectOptions{ContentType: contentType(dst)})
	}
	if resp, ok := errors.AsType[minio.ErrorResponse](err); ok && resp.Code == "PreconditionFailed" {
		return Info{}, fmt.Errorf("objstore: copy %s: %w", src, ErrChanged)
	}
	if err != nil {
		return Info{}, s.objectError("copy "+src+" to", dst, err)
	}
	return s.Stat(ctx, dst)
}

// copyMultipart copies size bytes of the object srcName to name, part by
// part, on the server; a failed copy is aborted.
func (s *S3) copyMultipart(ctx context.Context, srcName, name string, size int64, cond map[string]string, opts minio.PutObjectOptions) (err error) {
	if parts := (size + s.copyPartSize - 1) / s.copyPartSize; parts > maxS3Parts {
		return fmt.Errorf("the object is larger than %d parts of %d MiB, the most one copy can hold", maxS3Parts, s.copyPartSize>>20)
	}
	id, err := s.client.NewMultipartUpload(ctx, s.bucket, name, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s3AbortTimeout)
			defer cancel()
			s.client.AbortMultipartUpload(actx, s.bucket, name, id)
		}
	}()
	var parts []minio.CompletePart
	for num, offset := 1, int64(0); offset < size; num, offset = num+1, offset+s.copyPartSize {
		part, err := s.client.CopyObjectPart(ctx, s.bucket, srcName, s.bucket, name, id, num, offset, min(s.copyPartSize, size-offset), cond)
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: part.ETag})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, s.bucket, name, id, parts, opts)
	return err
}

// Get implements Store. The object is requested at once, so a missing one
// is reported here rather than on the first Read; reading stops if ctx
// ends.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body, _, _, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.objectError("get", key, err)
	}
	return body, nil
}

// Open implements Opener. Nothing is read before the first Read: then,
// and after each Seek that moves, one GET of the rest of the object from
// there, on the condition that the object still has the ETag it was
// described with.
func (s *S3) Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	if err := s.checkKey(key); err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return nil, Info{}, s.objectError("stat", key, err)
	}
	info := Info{Key: key, Size: oi.Size, ModTime: oi.LastModified, ETag: oi.ETag}
	return &s3Object{s: s, ctx: ctx, key: key, etag: oi.ETag, size: oi.Size, end: oi.Size}, info, nil
}

// s3Object reads one version of an object (its ETag) from any offset.
// Its methods may be called from several goroutines, as
// http.ServeContent does for a request of several ranges.
type s3Object struct {
	s    *S3
	ctx  context.Context
	key  string
	etag string
	size int64

	mu     sync.Mutex
	pos    int64
	end    int64         // where the next GET stops (readUpTo), size by default
	body   io.ReadCloser // the GET from pos on, once read; nil after a Seek
	closed bool
}

// readUpTo tells the object that reads stop at end: the next GET asks for
// no more, so that a client asking for a few bytes of a large object
// (a Range request) has the bucket send those, not the rest of the
// object into a connection that is about to close. A read past end
// reads on to the object's end.
func (o *s3Object) readUpTo(end int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.end = min(max(end, 0), o.size)
}

func (o *s3Object) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, fmt.Errorf("objstore: read %s: %w", o.key, os.ErrClosed)
	}
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		if o.pos >= o.end {
			o.end = o.size
		}
		opts := minio.GetObjectOptions{}
		if err := opts.SetMatchETag(o.etag); err != nil {
			return 0, fmt.Errorf("objstore: get %s: %w", o.key, err)
		}
		if err := opts.SetRange(o.pos, o.end-1); err != nil {
			return 0, fmt.Errorf("objstore: get %s: %w", o.key, err)
		}
		body, _, _, err := o.s.client.GetObject(o.ctx, o.s.bucket, o.s.prefix+o.key, opts)
		if err != nil {
			if resp, ok := errors.AsType[minio.ErrorResponse](err); ok && resp.Code == "PreconditionFailed" {
				return 0, fmt.Errorf("%w: %s", ErrChanged, o.key)
			}
			return 0, o.s.objectError("get", o.key, err)
		}
		o.body = body
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	if err == io.EOF {
		o.body.Close()
		o.body = nil
		switch {
		case o.pos < o.end:
			// The range ended early: what was read is not the object
			// described.
			err = fmt.Errorf("objstore: get %s: %w", o.key, io.ErrUnexpectedEOF)
		case o.pos < o.size:
			err = nil // the next Read goes on past end
		}
	}
	return n, err
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, fmt.Errorf("objstore: seek %s: %w", o.key, os.ErrClosed)
	}
	pos := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		pos += o.pos
	case io.SeekEnd:
		pos += o.size
	default:
		return o.pos, fmt.Errorf("objstore: seek %s: whence %d", o.key, whence)
	}
	if pos < 0 {
		return o.pos, fmt.Errorf("objstore: seek %s: negative position %d", o.key, pos)
	}
	if pos != o.pos && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.pos = pos
	return pos, nil
}

func (o *s3Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := s.checkKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.objectError("stat", key, err)
	}
	return Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	// S3 answers a delete of a missing key with success; some compatible
	// servers answer 404, which means the same here.
	if err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	return nil
}

// DeletePrefix implements Store. Keys are deleted as they are listed, in
// batches of up to 1,000 per request (S3's multi-object delete), so a job
// with thousands of frames takes a few requests and memory stays at one
// batch.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: refusing to delete with an empty prefix, which would remove every object", ErrInvalidKey)
	}
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Stopping the listing early (after a failed delete) needs its own
	// context.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var listErr error
	keys := func(yield func(minio.ObjectInfo) bool) {
		for o := range s.client.ListObjectsIter(lctx, s.bucket, s.listOptions(prefix)) {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			if !yield(minio.ObjectInfo{Key: o.Key}) {
				return
			}
		}
	}
	results, err := s.client.RemoveObjectsWithIter(lctx, s.bucket, keys, minio.RemoveObjectsOptions{})
	if err != nil {
		return fmt.Errorf("objstore: delete prefix %q: %w", prefix, err)
	}
	var deleteErr error
	for r := range results {
		if r.Err != nil && !isNoSuchKey(r.Err) {
			deleteErr = fmt.Errorf("objstore: delete %s: %w", strings.TrimPrefix(r.ObjectName, s.prefix), r.Err)
			break
		}
	}
	cancel()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case deleteErr != nil:
		return deleteErr
	case listErr != nil:
		return fmt.Errorf("objstore: delete prefix %q: listing: %w", prefix, listErr)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Info
	for o := range s.client.ListObjectsIter(ctx, s.bucket, s.listOptions(prefix)) {
		if o.Err != nil {
			return nil, fmt.Errorf("objstore: list %q: %w", prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		// A "folder/" marker, as some tools create, is not an object.
		if strings.HasSuffix(key, "/") {
			continue
		}
		out = append(out, Info{Key: key, Size: o.Size, ModTime: o.LastModified})
	}
	// The listing ends silently when ctx does: an empty answer must not
	// pass for an empty store.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// S3 lists in byte order already; some compatible servers walk a
	// filesystem folder by folder, which is not the same order.
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *S3) listOptions(prefix string) minio.ListObjectsOptions {
	noOwner := false
	return minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, FetchOwner: &noOwner}
}

// objectError turns S3's "no such key" into ErrNotFound.
func (s *S3) objectError(op, key string, err error) error {
	if isNoSuchKey(err) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("objstore: %s %s: %w", op, key, err)
}

func isNoSuchKey(err error) bool {
	resp, ok := errors.AsType[minio.ErrorResponse](err)
	return ok && resp.Code == "NoSuchKey"
}

// AbortStaleUploads aborts the multipart uploads under prefix begun
// before startedBefore, and answers how many. A Put of more than a part,
// or a Copy of a large object, aborts its upload when it fails; a process
// killed meanwhile never does, and the parts it sent stay in the bucket,
// invisible to List yet taking space (and billed), for ever. The local
// store has nothing of the kind: it removes the temporary files of killed
// writes as it opens.
func (s *S3) AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time) (int, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return 0, err
	}
	listCtx, stop := context.WithCancel(ctx)
	uploads := s.client.ListIncompleteUploads(listCtx, s.bucket, s.prefix+prefix, true)
	defer func() {
		// The listing's goroutine ends once it has said it was stopped.
		stop()
		for range uploads {
		}
	}()
	aborted := 0
	for u := range uploads {
		if u.Err != nil {
			return aborted, fmt.Errorf("objstore: list the unfinished uploads under %q: %w", prefix, u.Err)
		}
		if !u.Initiated.Before(startedBefore) {
			continue
		}
		if err := s.client.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil {
			return aborted, fmt.Errorf("objstore: abort the unfinished upload of %s: %w", strings.TrimPrefix(u.Key, s.prefix), err)
		}
		aborted++
	}
	return aborted, ctx.Err()
}
