package objstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxPresignTTL is the longest a presigned URL may live. It is S3's limit for
// SigV4 presigning; the local store enforces it too so that code which works
// on one backend works on the other.
const MaxPresignTTL = 7 * 24 * time.Hour

// ObjectsPath is the path prefix of the local store's presigned URLs, where
// the caller mounts Handler.
const ObjectsPath = "/objects/"

// Query parameters of a local presigned URL.
const (
	paramExpires = "expires"
	paramSig     = "sig"
	paramName    = "name"
)

// PresignPut implements Store. The URL is
// {BaseURL}/objects/{key}?expires={unix}&sig={hex}.
func (l *Local) PresignPut(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	return l.presign(ctx, http.MethodPut, key, ttl, "")
}

// PresignGet implements Store. The URL is
// {BaseURL}/objects/{key}?expires={unix}&name={downloadName}&sig={hex}, name
// being left out when empty; the name is signed, so it cannot be changed.
func (l *Local) PresignGet(ctx context.Context, key string, ttl time.Duration, downloadName string) (string, time.Time, error) {
	if err := checkDownloadName(downloadName); err != nil {
		return "", time.Time{}, err
	}
	return l.presign(ctx, http.MethodGet, key, ttl, downloadName)
}

func (l *Local) presign(ctx context.Context, method, key string, ttl time.Duration, name string) (string, time.Time, error) {
	if err := l.checkKey(key); err != nil {
		return "", time.Time{}, err
	}
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	return l.urls.presign(method, key, ttl, name)
}

// urlSigner makes and checks the URLs this server serves itself: the local
// store's, and a Gateway's downloads. A URL is
// {baseURL}/objects/{key}?expires={unix}&name={downloadName}&sig={hex}.
type urlSigner struct {
	// baseURL is the public URL of the server that serves them.
	baseURL string
	// secret keys the signatures; whoever holds it can sign any URL.
	secret []byte
	// now is time.Now, or a test's clock.
	now func() time.Time
}

// newURLSigner checks the base URL and the secret's length.
func newURLSigner(baseURL string, secret []byte, now func() time.Time) (urlSigner, error) {
	if len(secret) < minSecretLen {
		return urlSigner{}, fmt.Errorf("objstore: the URL-signing secret has %d bytes, want at least %d (see LoadOrCreateSecret)", len(secret), minSecretLen)
	}
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return urlSigner{}, err
	}
	if now == nil {
		now = time.Now
	}
	return urlSigner{baseURL: base, secret: slices.Clone(secret), now: now}, nil
}

// presign signs a URL for method and a key already checked.
func (u urlSigner) presign(method, key string, ttl time.Duration, name string) (string, time.Time, error) {
	if err := checkTTL(ttl); err != nil {
		return "", time.Time{}, err
	}
	// The URL carries whole seconds; rounding up keeps the promise that the
	// URL lives at least ttl, and expiresAt is exactly what is enforced.
	exp := u.now().Add(ttl)
	expUnix := exp.Unix()
	if exp.After(time.Unix(expUnix, 0)) {
		expUnix++
	}
	expires := strconv.FormatInt(expUnix, 10)

	q := url.Values{}
	q.Set(paramExpires, expires)
	if method == http.MethodGet && name != "" {
		q.Set(paramName, name)
	}
	q.Set(paramSig, hex.EncodeToString(u.sign(method, key, expires, name)))
	return u.baseURL + ObjectsPath + escapeKey(key) + "?" + q.Encode(), time.Unix(expUnix, 0).UTC(), nil
}

// sign computes HMAC-SHA256(secret, method "\n" key "\n" expires), followed
// for GET by "\n" name so the download name is bound to the URL. Keys
// contain no newline (ValidateKey) and expires is digits, so the fields
// cannot be shifted into one another. The host is not signed: the public URL
// may change behind a proxy without invalidating outstanding URLs.
func (u urlSigner) sign(method, key, expires, name string) []byte {
	m := hmac.New(sha256.New, u.secret)
	io.WriteString(m, method+"\n"+key+"\n"+expires)
	if method == http.MethodGet {
		io.WriteString(m, "\n"+name)
	}
	return m.Sum(nil)
}

// Reasons verify refuses a request.
var (
	errNoSignature  = errors.New("no signature")
	errBadSignature = errors.New("signature mismatch")
	// errExpired is only given for a URL that we did sign.
	errExpired = errors.New("expired")
)

// verify checks a request's signature for method ("GET" or "PUT") and key.
// It returns errExpired only for a URL that we did sign, so that an expired
// message is never shown for a forged one.
func (u urlSigner) verify(method, key string, q url.Values) (expiresAt time.Time, err error) {
	expires, sigHex := q.Get(paramExpires), q.Get(paramSig)
	if expires == "" || sigHex == "" {
		return time.Time{}, errNoSignature
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return time.Time{}, errBadSignature
	}
	if !hmac.Equal(sig, u.sign(method, key, expires, q.Get(paramName))) {
		return time.Time{}, errBadSignature
	}
	expUnix, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return time.Time{}, errBadSignature
	}
	expiresAt = time.Unix(expUnix, 0).UTC()
	if !u.now().Before(expiresAt) {
		return expiresAt, errExpired
	}
	return expiresAt, nil
}

// escapeKey escapes each segment for a URL path, keeping the slashes, so the
// server decodes exactly the key back.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxPresignTTL {
		return fmt.Errorf("objstore: presign ttl %v is out of range: it must be positive and at most %v", ttl, MaxPresignTTL)
	}
	return nil
}

// checkDownloadName refuses names that cannot travel in a header. Anything
// else, Unicode included, is encoded by mime.FormatMediaType.
func checkDownloadName(name string) error {
	if len(name) > 255 {
		return fmt.Errorf("objstore: download name is longer than 255 bytes")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("objstore: download name %q is not valid UTF-8", name)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("objstore: download name %q contains a control character", name)
	}
	return nil
}
