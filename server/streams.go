package server

import (
	"context"
	"net/http"
	"strings"
)

// streams ends the requests that last until the client leaves (live logs, a page's
// events, proxies following the route table) when the server stops: EndStreams. Other
// requests keep their context and finish, so a stopping server need not wait out the
// streams and cuts no push, upload or deploy short.
type streams struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newStreams() streams {
	ctx, cancel := context.WithCancel(context.Background())
	return streams{ctx: ctx, cancel: cancel}
}

// isStream reports whether r asks for a stream: server-sent events (the pages'
// /events), a followed log (?follow=1) or a long poll of the route table (?wait=).
func isStream(r *http.Request) bool {
	q := r.URL.Query()
	return strings.HasSuffix(r.URL.Path, "/events") || q.Get("follow") == "1" || q.Has("wait")
}

// bound gives a stream a context that also ends with EndStreams.
func (st streams) bound(r *http.Request) (*http.Request, func()) {
	if !isStream(r) {
		return r, func() {}
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(st.ctx, cancel)
	return r.WithContext(ctx), func() { stop(); cancel() }
}

// EndStreams ends every stream in flight and every one that starts from now on: call
// it when the server begins to stop, before http.Server.Shutdown waits for requests.
func (s *Server) EndStreams() { s.streams.cancel() }
