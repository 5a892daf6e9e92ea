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

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
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
	defer drainAndClose(resp.Body)

	if !isSuccess(resp.StatusCode) {
		return resp.Header, fmt.Errorf("%s: %w", op, readAPIError(resp))
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("%s: read answer of %s %s: %w", op, method, target, err)
		}
	}
	return resp.Header, nil
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
