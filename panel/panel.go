// Package panel is the control panel every node serves at /: a browser
// application, embedded in the binary (go build alone gives it: no npm
// step, no CDN), that reads the node's JSON API (/v1/...) and shows the
// whole cluster.
//
// The application is plain ES modules, HTML and CSS under assets/, written
// by hand: no framework and no build step, so that what the browser runs
// is what the repository holds (docs/architecture.md says why). Every value
// from a run, a log line or an attribute is put in the page as text, never
// as HTML.
package panel

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Handler serves the panel: its page for / and any other path without a
// file extension (a page of the application, /runs/ID, which routes in the
// browser), and its assets under /a/VERSION/ (VERSION a hash of them all,
// cached for good: a new binary's page names a new version) and, for
// compatibility, by name at the root (revalidated by ETag). Paths with a
// file extension that is not an asset are 404.
func Handler() http.Handler {
	root, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	files := http.FileServerFS(root)
	tags, version := etags(root)
	page, err := fs.ReadFile(root, "index.html")
	if err != nil {
		panic(err)
	}
	// The page names its assets under their version.
	prefix := "/a/" + version + "/"
	for name := range tags {
		page = bytes.ReplaceAll(page, []byte(`="/`+name+`"`), []byte(`="`+prefix+name+`"`))
	}
	pageTag := tags["index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// The panel's own code only: no inline script, no other origin.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		cache := "no-cache" // revalidated: a new binary serves new assets
		if rest, ok := strings.CutPrefix(name, "a/"); ok {
			ver, file, _ := strings.Cut(rest, "/")
			if ver == version {
				cache = "public, max-age=31536000, immutable"
			} // an older page's version: today's file, revalidated
			name = file
		}
		if name != "" && path.Ext(name) != "" {
			if _, err := fs.Stat(root, name); err != nil {
				http.NotFound(w, r)
				return
			}
			h.Set("Cache-Control", cache)
			h.Set("ETag", tags[name]) // which answers 304 to a browser that has it
			r2 := *r
			r2.URL = &url.URL{Path: "/" + name}
			files.ServeHTTP(w, &r2)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", pageTag)
		if r.Header.Get("If-None-Match") == pageTag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(page)
	})
}

// etags returns a strong ETag for each file under root (the start of its
// content's SHA-256) and a version of them all (a hash of the ETags).
func etags(root fs.FS) (tags map[string]string, version string) {
	tags = map[string]string{}
	all := sha256.New()
	fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error { // in lexical order
		if err == nil && !d.IsDir() {
			if data, err := fs.ReadFile(root, name); err == nil {
				sum := sha256.Sum256(data)
				tags[name] = `"` + hex.EncodeToString(sum[:12]) + `"`
				all.Write([]byte(name + tags[name]))
			}
		}
		return nil
	})
	return tags, hex.EncodeToString(all.Sum(nil)[:6])
}
