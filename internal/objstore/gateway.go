package objstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	serveGet(t, r, key, g.Open, g.served, g.log)
}
