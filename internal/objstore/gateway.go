package objstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// Bucket holds the objects.
	Bucket Opener

	// BaseURL is the public base URL of the servers that mount Handler, as
	// LocalConfig.BaseURL.
	BaseURL string

	// Secret keys the download URLs' signatures: at least 32 bytes, the
	// same on every server that mounts Handler and every process that
	// signs URLs, and kept, so that URLs already handed out keep working.
	Secret []byte

	// Served, if set, is told the bytes each download sent, as
	// LocalConfig.Served.
	Served func(ctx context.Context, key string, bytes int64) error

	// TransferIdleTimeout is how long a download may take nothing before
	// the connection is cut; 0 means DefaultTransferIdleTimeout.
	TransferIdleTimeout time.Duration

	// Now replaces time.Now, so tests can expire URLs without sleeping.
	Now func() time.Time

	// Log receives the errors behind a 500 answer; nil discards them.
	Log *slog.Logger
}

// Gateway is a bucket whose downloads go through this server: its download
// URLs are this server's own (signed as the local store signs them), and
// Handler reads what they ask for from the bucket. That costs this server
// the bytes of every download, and buys what a bucket's own URLs cannot
// give: each download's bytes are counted (Served), and clients need not
// reach the bucket to download. Uploads, and everything else, go straight
// to the bucket as before.
type Gateway struct {
	Opener // every method but PresignGet is the bucket's own

	urls   urlSigner
	served func(ctx context.Context, key string, bytes int64) error
	idle   time.Duration
	log    *slog.Logger
}

var _ Store = (*Gateway)(nil)

// NewGateway puts the bucket cfg.Bucket behind this server's downloads.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Bucket == nil {
		return nil, fmt.Errorf("objstore: GatewayConfig.Bucket is nil")
	}
	urls, err := newURLSigner(cfg.BaseURL, cfg.Secret, cfg.Now)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Opener: cfg.Bucket, urls: urls, served: cfg.Served, idle: cfg.TransferIdleTimeout, log: cfg.Log}
	if g.idle <= 0 {
		g.idle = DefaultTransferIdleTimeout
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// PresignGet implements Store: a URL of this server, served by Handler,
// in the local store's form.
func (g *Gateway) PresignGet(ctx context.Context, key string, ttl time.Duration, downloadName string) (string, time.Time, error) {
	if err := ValidateKey(key); err != nil {
		return "", time.Time{}, err
	}
	if err := checkDownloadName(downloadName); err != nil {
		return "", time.Time{}, err
	}
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	return g.urls.presign(http.MethodGet, key, ttl, downloadName)
}

// Handler serves the download URLs PresignGet signs: GET and HEAD, with
// Range and conditional requests, each read from the bucket as it is
// sent. Mount it at ObjectsPath, without auth, as the local store's
// Handler; what it answers, and how it cuts a stalled download, is the
// same.
func (g *Gateway) Handler() http.Handler {
	return http.HandlerFunc(g.serveHTTP)
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// No request here has a body: a read deadline would be taken for a
	// closed connection during a long download, as in Local.serveHTTP.
	t := newTransfer(w, g.idle)
	_ = t.rc.SetReadDeadline(time.Time{})
	t.extendWrite()
	key, ok := strings.CutPrefix(r.URL.Path, ObjectsPath)
	if !ok {
		writeError(w, r, http.StatusNotFound, codeNotFound,
			"object URLs start with "+ObjectsPath+"; use the URL exactly as the API returned it")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPut:
		// The gateway signs no upload URL, so a PUT here is a download
		// URL used to upload: answered as the local store answers it.
		writeSignatureError(w, r, http.MethodPut, time.Time{}, errBadSignature)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed here: download with GET from a download URL; uploads go with PUT to the upload URL the API returned", r.Method))
		return
	}
	if err := ValidateKey(key); err != nil {
		writeError(w, r, http.StatusBadRequest, codeInvalidKey, err.Error()+"; use the URL exactly as the API returned it")
		return
	}
	if expiresAt, err := g.urls.verify(http.MethodGet, key, r.URL.Query()); err != nil {
		writeSignatureError(w, r, http.MethodGet, expiresAt, err)
		return
	}
	// A request of several ranges is answered whole (HTTP allows it): each
	// range would be a GET of the bucket's, so a header of a thousand
	// one-byte ranges would cost a thousand, for a thousand bytes sent.
	if strings.Contains(r.Header.Get("Range"), ",") {
		r.Header.Del("Range")
	}
	open := func(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
		f, info, err := g.Open(ctx, key)
		if err != nil {
			return nil, info, err
		}
		// One range: the bucket sends that range and no more.
		if end, ok := rangeEnd(r.Header.Get("Range"), info.Size); ok {
			if b, ok := f.(interface{ readUpTo(int64) }); ok {
				b.readUpTo(end)
			}
		}
		return f, info, nil
	}
	serveGet(t, r, key, open, g.served, g.log)
}

// rangeEnd is where the one range of a Range header "bytes=FIRST-LAST"
// ends (LAST+1, at most size); ok is false for any other header, whose
// range, if any, runs to the object's end.
func rangeEnd(header string, size int64) (end int64, ok bool) {
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found {
		return 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found || first == "" || last == "" {
		return 0, false
	}
	f, err1 := strconv.ParseInt(first, 10, 64)
	l, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || f < 0 || l < f {
		return 0, false
	}
	return min(l, size-1) + 1, true
}
