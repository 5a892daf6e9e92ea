package web

import (
	"archive/zip"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// The dashboard offers the Blender add-on as a download, the same zip
// `renderfarm addon` writes.
func TestAddonDownload(t *testing.T) {
	h := Handler(Options{})
	rec := get(t, h, http.MethodGet, AddonPath, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d", AddonPath, rec.Code)
	}
	hd := rec.Header()
	if hd.Get("Content-Type") != "application/zip" || hd.Get("Content-Disposition") != `attachment; filename="renderfarm-addon.zip"` || hd.Get("ETag") == "" {
		t.Errorf("headers = %v", hd)
	}
	body := rec.Body.Bytes()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the download is not a zip: %v", err)
	}
	found := false
	for _, f := range zr.File {
		found = found || f.Name == "renderfarm/__init__.py"
	}
	if !found {
		t.Error("the zip has no renderfarm/__init__.py, so Blender cannot install it")
	}
	// Asked again with its ETag, it is not sent again.
	again := get(t, h, http.MethodGet, AddonPath, http.Header{"If-None-Match": {hd.Get("ETag")}})
	if again.Code != http.StatusNotModified {
		t.Errorf("GET with If-None-Match = %d, want 304", again.Code)
	}
	// The new-job page links to it.
	page := get(t, h, http.MethodGet, "/ui/views/newjob.js", nil)
	if !strings.Contains(page.Body.String(), "'"+AddonPath+"'") {
		t.Errorf("newjob.js does not link to %s", AddonPath)
	}
}
