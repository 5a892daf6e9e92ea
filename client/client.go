package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIPath is the path under which the server answers the API. New adds it to
// the base URL, so that the same base URL also serves for the dashboard and
// for the files the server signs URLs for.
const APIPath = "/api/external/v1"

// DefaultPollInterval is how often [Client.Wait] asks for a job's status when
// no [WithPollInterval] option is given: often enough that a pipeline notices
// a finished job at once, rarely enough that a farm with many waiting
// clients does not spend its time answering them.
const DefaultPollInterval = 500 * time.Millisecond

// defaultUserAgent lets a farm's operator tell this client's requests apart
// in logs from those of curl or a browser.
const defaultUserAgent = "renderfarm-go-client"

// DefaultRateLimitRetries is how many times a request refused with 429 is
// sent again when no [WithRateLimitRetries] option is given.
const DefaultRateLimitRetries = 5

// maxRateLimitWait is the longest Retry-After the client waits out by
// itself; a server that asks for more gets its error passed to the caller,
// who knows better whether the wait is worth it.
const maxRateLimitWait = time.Minute

// maxErrorBody bounds how much of an error answer is read: enough for any
// JSON error, and a misbehaving proxy cannot make the client read a page of
// HTML without end.
const maxErrorBody = 64 << 10

// Client talks to one renderfarm (or Renderjuice) server with one API key.
// It holds no per-call state, so one Client is safe for concurrent use by
// many goroutines and should be reused: it keeps connections open between
// calls.
type Client struct {
	root         string // base URL without APIPath, for resolving relative URLs
	api          string // root + APIPath
	apiKey       string
	http         *http.Client
	userAgent    string
	pollInterval time.Duration
	rateRetries  int
}

// Option changes how a Client is made. Options exist so that New stays
// short for the common case and new settings never break existing callers.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc, for proxies,
// custom TLS roots or tests. Setting a Timeout on hc also bounds uploads and
// downloads, which can legitimately take long; prefer a context deadline
// per call. A nil hc keeps the default.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithUserAgent sets the User-Agent header, so that a farm's logs can say
// which tool or pipeline step sent a request.
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// WithPollInterval sets how often [Client.Wait] asks for a job's status.
// Values of zero or less keep [DefaultPollInterval].
func WithPollInterval(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// WithRateLimitRetries sets how many times a request the server refused
// with 429 [CodeRateLimited] is sent again, each time after the wait its
// Retry-After header asks for (up to a minute). A refused request did
// nothing on the server, so sending it again is safe for every method.
// Zero or less turns retrying off, and the 429 is returned at once.
func WithRateLimitRetries(n int) Option {
	return func(c *Client) {
		c.rateRetries = max(n, 0)
	}
}

// New returns a Client for the server at baseURL, such as
// "http://127.0.0.1:8080", that authenticates with apiKey. The client adds
// [APIPath] itself; a baseURL that already ends with it is accepted too, so
// that a URL copied from the API reference works. New does not contact the
// server: a wrong URL or key shows up as an error of the first call.
func New(baseURL, apiKey string, opts ...Option) *Client {
	root := strings.TrimRight(baseURL, "/")
	root = strings.TrimSuffix(root, APIPath)
	c := &Client{
		root:   root,
		api:    root + APIPath,
		apiKey: apiKey,
		// No overall timeout: uploads and renders take as long as they take,
		// and every call has a context to bound it.
		http:         &http.Client{},
		userAgent:    defaultUserAgent,
		pollInterval: DefaultPollInterval,
		rateRetries:  DefaultRateLimitRetries,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// call sends one API request and decodes a 2xx answer into out (when out is
// not nil). It returns the answer's headers, which a few routes use to say
// more than the body does. op names what the caller was doing, so every
// error reads as a sentence about it.
func (c *Client) call(ctx context.Context, op, method, path string, query url.Values, in, out any) (http.Header, error) {
	target := c.api + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}

	var payload []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", op, err)
		}
		payload = b
	}

	for attempt := 0; ; attempt++ {
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}

		resp, err := c.http.Do(req)
		if err != nil {
			// The *url.Error from Do names the method and URL, so an
			// unreachable server is plain from the message alone.
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if isSuccess(resp.StatusCode) {
			defer drainAndClose(resp.Body)
			if out != nil {
				if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
					return resp.Header, fmt.Errorf("%s: read answer of %s %s: %w", op, method, target, err)
				}
			}
			return resp.Header, nil
		}
		apiErr := readAPIError(resp)
		drainAndClose(resp.Body)
		if resp.StatusCode == http.StatusTooManyRequests && attempt < c.rateRetries && apiErr.RetryAfter <= maxRateLimitWait {
			wait := apiErr.RetryAfter
			if resp.Header.Get("Retry-After") == "" {
				// A 429 that does not say when (from a proxy, say) gets a
				// pause all the same rather than a burst of retries.
				wait = time.Second
			}
			if err := sleep(ctx, wait); err != nil {
				return resp.Header, fmt.Errorf("%s: %w (gave up waiting: %w)", op, apiErr, err)
			}
			continue
		}
		return resp.Header, fmt.Errorf("%s: %w", op, apiErr)
	}
}

// sleep waits for d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resolve turns a URL the server handed out into an absolute one. Servers
// that sign URLs for their own files may give them relative to themselves;
// resolving here spares every caller a confusing "unsupported protocol
// scheme" error.
func (c *Client) resolve(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.IsAbs() {
		return rawURL, nil
	}
	base, err := url.Parse(c.root + "/")
	if err != nil {
		return "", err
	}
	return base.ResolveReference(u).String(), nil
}

func isSuccess(status int) bool {
	return status >= 200 && status <= 299
}

// drainAndClose reads what is left of a body before closing it, because
// net/http reuses a connection only when its last body was read to the end.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	_ = body.Close()
}

// redactURL drops the query of a URL for error messages. The query of a
// presigned URL is its signature, a credential that should not end up in
// logs; the rest still says where the request went.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.User = nil
	return u.String()
}

// redactErr removes the query of the URL inside a *url.Error, for the same
// reason as redactURL; other errors are returned unchanged.
func redactErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		ue.URL = redactURL(ue.URL)
	}
	return err
}
