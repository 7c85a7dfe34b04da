package server

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/drover-cd/drover/runner"
	"github.com/drover-cd/drover/store"
)

// webFS holds the web UI's templates and static assets.
//
//go:embed web/templates/*.html web/static/*
var webFS embed.FS

// web is the web UI: its parsed templates and static assets, bound to the server. The
// pages are server-rendered and work without JavaScript; web/static/drover.js only adds
// live updates (SSE and a streamed log).
type web struct {
	s      *Server
	pages  map[string]*template.Template // by page name, e.g. "run"
	assets map[string]webAsset           // by file name, e.g. "drover.css"
	ping   time.Duration                 // how often idle event streams send a comment
}

// webRoutes registers the web UI's pages, its forms, its event streams and its assets.
func (s *Server) webRoutes() {
	w := newWeb(s)
	m := routeList{s} // new routes go into TestEveryRouteRefusesMachineTokens's table too
	m.HandleFunc("GET /{$}", w.page(RoleViewer, w.index))
	m.HandleFunc("GET /p/{p}", w.page(RoleViewer, w.project))
	m.HandleFunc("GET /p/{p}/events", s.require(RoleViewer, w.projectEvents))
	if s.cfg.Releases != nil {
		m.HandleFunc("GET /p/{p}/releases", w.page(RoleViewer, w.releases))
	}
	if s.cfg.Deploys != nil {
		m.HandleFunc("GET /env", w.page(RoleViewer, w.envs))
		m.HandleFunc("GET /env/{env}", w.page(RoleViewer, w.env))
		m.HandleFunc("GET /env/{env}/events", s.require(RoleViewer, w.envEvents))
		m.HandleFunc("GET /audit", w.page(RoleViewer, w.auditPage))
		m.HandleFunc("GET /pipeline", w.page(RoleViewer, w.pipelineOverview))
	}
	if s.cfg.Agents != nil {
		m.HandleFunc("GET /agents", w.page(RoleViewer, w.agents))
	}
	m.HandleFunc("GET /p/{p}/runs/{n}", w.page(RoleViewer, w.run))
	m.HandleFunc("GET /p/{p}/runs/{n}/events", s.require(RoleViewer, w.runEvents))
	m.HandleFunc("GET /p/{p}/runs/{n}/steps/{step}", w.page(RoleViewer, w.step))
	m.HandleFunc("POST /p/{p}/runs/{n}/cancel", w.page(RoleDeveloper, w.cancel))
	m.HandleFunc("POST /p/{p}/runs/{n}/rerun", w.page(RoleDeveloper, w.rerun))
	m.HandleFunc("POST /p/{p}/runs/{n}/approve", w.page(RoleViewer, w.approve))
	m.HandleFunc("GET /login", w.loginForm)
	m.HandleFunc("POST /login", w.login)
	m.HandleFunc("POST /logout", w.logout)
	m.HandleFunc("GET /static/{file}", w.static)
}

// newWeb parses the templates and indexes the assets; a broken template panics at start.
func newWeb(s *Server) *web {
	w := &web{s: s, pages: map[string]*template.Template{}, assets: loadAssets(), ping: webPing}
	base := template.Must(template.New("layout.html").Funcs(w.funcs()).
		ParseFS(webFS, "web/templates/layout.html", "web/templates/parts.html"))
	pages, err := fs.Glob(webFS, "web/templates/page_*.html")
	if err != nil || len(pages) == 0 {
		panic(fmt.Sprintf("web: no page templates: %v", err))
	}
	for _, file := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(file[strings.LastIndexByte(file, '/')+1:], "page_"), ".html")
		w.pages[name] = template.Must(template.Must(base.Clone()).ParseFS(webFS, file))
	}
	return w
}

// pageData is what every page template gets: the layout's fields and the page's own.
type pageData struct {
	Title   string
	User    Principal
	Path    string // the request's path and query, for the sign-in link
	Develop bool   // the user may cancel and re-run
	Agents  bool   // the server has build agents: the navigation links their page
	Page    any    // the page's own data
}

// render executes page into a buffer first, so a template error becomes a clean 500.
func (w *web) render(rw http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	p := principal(r)
	var buf bytes.Buffer
	err := w.pages[page].ExecuteTemplate(&buf, "layout.html", pageData{Title: title, User: p,
		Path: r.URL.RequestURI(), Develop: p.Can(RoleDeveloper), Agents: w.s.cfg.Agents != nil, Page: data})
	if err != nil {
		w.s.cfg.Log.Error("render page", "page", page, "err", err)
		http.Error(rw, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	rw.WriteHeader(status)
	_, _ = rw.Write(buf.Bytes())
}

// page guards a page: a visitor without role is sent to sign in, instead of the API's
// JSON 401 or 403. A client that sends its own credentials (an Authorization header,
// Bearer or Basic: a script, curl, a monitor) is authenticated as by the API instead:
// with a token that has role it gets the page, otherwise the API's 401 or 403, since
// a sign-in form is no use to it.
func (w *web) page(role string, next http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" && !principal(r).Can(role) {
			w.s.require(role, next)(rw, r)
			return
		}
		if p := principal(r); p.Machine != "" {
			w.fail(rw, r, http.StatusForbidden, errors.New(machineRefusal(p, r)))
			return
		}
		if principal(r).Can(role) {
			if r.Method == http.MethodPost && !sameOrigin(r) {
				w.fail(rw, r, http.StatusForbidden, errors.New("the form was posted from another site"))
				return
			}
			next(rw, r)
			return
		}
		back := r.URL.RequestURI()
		if r.Method != http.MethodGet { // a form's action: come back to the page it was on
			back = r.URL.Path[:strings.LastIndexByte(r.URL.Path, '/')]
		}
		q := url.Values{"next": {back}}
		if principal(r).Role != "" {
			q.Set("need", role)
		}
		http.Redirect(rw, r, "/login?"+q.Encode(), http.StatusSeeOther)
	}
}

// sameOrigin reports whether a form post came from this site, as far as the browser says.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// fail renders the error page.
func (w *web) fail(rw http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= http.StatusInternalServerError {
		w.s.cfg.Log.Error("page failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.render(rw, r, status, "error", http.StatusText(status), map[string]any{
		"Status": status, "Text": http.StatusText(status), "Message": err.Error()})
}

// failErr renders the error page with the status err's kind calls for.
func (w *web) failErr(rw http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.fail(rw, r, http.StatusNotFound, err)
	case errors.Is(err, store.ErrExists), errors.Is(err, runner.ErrNoPipeline), errors.Is(err, runner.ErrFinished):
		w.fail(rw, r, http.StatusConflict, err)
	default:
		w.fail(rw, r, http.StatusInternalServerError, err)
	}
}
