package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// tagList is the body of GET /v2/<name>/tags/list.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// serveTags handles GET /v2/<name>/tags/list?n=<int>&last=<tag>.
func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, name string, _ []string) {
	if !allow(w, req, http.MethodGet, http.MethodHead) {
		return
	}
	if !r.repoExists(name) {
		writeError(w, http.StatusNotFound, CodeNameUnknown, "repository name not known to registry", map[string]string{"name": name})
		return
	}
	q := req.URL.Query()
	tags, err := r.listTags(name)
	if err != nil {
		r.storageError(w, req, err)
		return
	}
	if last := q.Get("last"); last != "" {
		tags = tags[sort.SearchStrings(tags, last):]
		if len(tags) > 0 && tags[0] == last {
			tags = tags[1:]
		}
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, CodeUnsupported, "invalid n", map[string]string{"n": ns})
			return
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				v := url.Values{"n": {ns}, "last": {tags[n-1]}}
				w.Header().Set("Link", "</v2/"+name+"/tags/list?"+v.Encode()+`>; rel="next"`)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(tagList{Name: name, Tags: tags})
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if req.Method == http.MethodGet {
		w.Write(body)
	}
}
