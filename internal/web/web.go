// Package web serves the dashboard: one HTML page at / and its styles,
// scripts and icon under /ui/, all embedded in the binary so that a farm on
// a network without internet access needs nothing else. The page talks to
// the farm only through the public API under /api/external/v1, with the
// API key the person signs in with.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/addon"
)

//go:embed static
var static embed.FS

// Options are what Handler needs to know about the farm it runs in front of.
type Options struct {
	// ObjectOrigins are origins besides the dashboard's own where presigned
	// object URLs may point: the farm's --public-url when people reach the
	// farm under another name, or an S3 endpoint. The page uploads to them
	// and shows images and videos from them, so the Content-Security-Policy
	// must allow them. Each entry may be a full URL; only its scheme, host
	// and port count. Entries that are not http or https URLs with a host
	// are left out, so nothing but an origin ever reaches the policy.
	ObjectOrigins []string
}

// Cache lifetimes. The page itself is revalidated on every load so that a
// new binary shows up at once; the assets it names keep their names across
// releases, so they are only cached briefly and then revalidated by ETag.
const (
	indexCacheControl = "no-cache"
	assetCacheControl = "max-age=300"
)

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
	// download, if set, is the file name a browser saves the asset under.
	download string
}

// AddonPath is where the dashboard offers the Blender add-on: the zip
// `renderfarm addon` writes, made from the same embedded files.
const AddonPath = "/ui/renderfarm-addon.zip"

// Handler returns the dashboard's handler. It answers GET and HEAD for / and
// for the files under /ui/, and 404 for every other path, so it can be
// mounted on exactly those two patterns.
func Handler(opts Options) http.Handler {
	assets, err := loadAssets(static)
	if err != nil {
		// The files are compiled in; failing to read them is a broken build.
		panic("web: " + err.Error())
	}
	return &handler{assets: assets, csp: contentSecurityPolicy(opts.ObjectOrigins)}
}

type handler struct {
	assets map[string]asset // by URL path: "/" and "/ui/…"
	csp    string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard only answers GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.Error(w, "no such page; the dashboard lives at /", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == "/" {
		hd.Set("Cache-Control", indexCacheControl)
		hd.Set("Content-Security-Policy", h.csp)
		// Object URLs carry their signature in the query; the page should
		// not hand its own address to anyone either.
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
	} else {
		hd.Set("Cache-Control", assetCacheControl)
	}
	if a.download != "" {
		hd.Set("Content-Disposition", `attachment; filename="`+a.download+`"`)
	}
	// ServeContent answers HEAD, If-None-Match and ranges. A zero modtime
	// leaves Last-Modified out: the ETag is the validator.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// contentSecurityPolicy allows the page to load nothing but its own files,
// and to reach the API and the object URLs. Inline scripts and styles are
// refused; the page sets styles only through the CSSOM, which the policy
// does not cover.
func contentSecurityPolicy(objectOrigins []string) string {
	objects := "'self'"
	seen := map[string]bool{}
	for _, o := range objectOrigins {
		origin, ok := originOf(o)
		if !ok || seen[origin] {
			continue
		}
		seen[origin] = true
		objects += " " + origin
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src " + objects,
		"media-src " + objects,
		"connect-src " + objects,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// originOf reduces a URL to its origin, scheme://host[:port], in lower case.
func originOf(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	// Host holds host[:port] as given; the characters a policy treats as
	// separators cannot be in it once url.Parse has accepted it, but check
	// anyway since this string goes into a security header.
	host := strings.ToLower(u.Host)
	if strings.ContainsAny(host, " ;,'\"") {
		return "", false
	}
	return scheme + "://" + host, true
}

// loadAssets reads every embedded file once: static/index.html becomes "/",
// static/ui/x becomes "/ui/x"; the Blender add-on's zip is made once too.
func loadAssets(fsys fs.FS) (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(fsys, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(name, "static/")
		urlPath := "/" + rel
		if rel == "index.html" {
			urlPath = "/"
		} else if !strings.HasPrefix(rel, "ui/") {
			// Only the page and what is under ui/ are served.
			return nil
		}
		sum := sha256.Sum256(body)
		assets[urlPath] = asset{
			body:        body,
			contentType: contentType(name),
			etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var zip bytes.Buffer
	if err := addon.WriteZip(&zip); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(zip.Bytes())
	assets[AddonPath] = asset{
		body:        zip.Bytes(),
		contentType: "application/zip",
		etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
		download:    path.Base(AddonPath),
	}
	return assets, nil
}

// contentTypes fixes the types of the files the dashboard is made of, rather
// than trusting the host's mime.types: a module script served with a wrong
// type is refused by the browser.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".png":  "image/png",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
