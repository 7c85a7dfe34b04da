package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// webAsset is one embedded static file and the hash that versions its URL.
type webAsset struct {
	data []byte
	hash string // first 12 hex digits of its SHA-256
	typ  string
}

// loadAssets reads web/static into memory; it is a few kilobytes.
func loadAssets() map[string]webAsset {
	out := map[string]webAsset{}
	files, err := fs.ReadDir(webFS, "web/static")
	if err != nil {
		panic(fmt.Sprintf("web: read static assets: %v", err))
	}
	for _, f := range files {
		data, err := fs.ReadFile(webFS, "web/static/"+f.Name())
		if err != nil {
			panic(fmt.Sprintf("web: read static asset %s: %v", f.Name(), err))
		}
		sum := sha256.Sum256(data)
		typ := mime.TypeByExtension(path.Ext(f.Name()))
		if typ == "" {
			typ = "application/octet-stream"
		}
		out[f.Name()] = webAsset{data: data, hash: hex.EncodeToString(sum[:6]), typ: typ}
	}
	return out
}

// assetURL is the URL of a static file with its content hash, so it can be cached forever.
func (w *web) assetURL(name string) (string, error) {
	a, ok := w.assets[name]
	if !ok {
		return "", fmt.Errorf("no static asset %q", name)
	}
	return "/static/" + name + "?v=" + a.hash, nil
}

// static serves an embedded asset. A URL with the current hash is cached for a year;
// any other is revalidated with the ETag.
func (w *web) static(rw http.ResponseWriter, r *http.Request) {
	a, ok := w.assets[r.PathValue("file")]
	if !ok {
		http.NotFound(rw, r)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", a.typ)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", `"`+a.hash+`"`)
	if r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(a.data))
}
