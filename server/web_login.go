package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drover-cd/drover/store"
)

// webSession is how long the sign-in cookie lasts.
const webSession = 30 * 24 * time.Hour

// loginPage is the data of the sign-in page.
type loginPage struct {
	Next  string // where to go once signed in
	Need  string // the role the page that sent the visitor here needs
	Error string
}

// loginForm shows the sign-in form: paste a token.
func (w *web) loginForm(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := loginPage{Next: localPath(q.Get("next")), Need: q.Get("need")}
	if !ValidRole(page.Need) {
		page.Need = ""
	}
	w.render(rw, r, http.StatusOK, "login", "Sign in", page)
}

// login checks the pasted token and keeps it in the TokenCookie.
func (w *web) login(rw http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		w.fail(rw, r, http.StatusForbidden, errors.New("the sign-in form was posted from another site"))
		return
	}
	r.Body = http.MaxBytesReader(rw, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		w.fail(rw, r, http.StatusBadRequest, fmt.Errorf("read the form: %w", err))
		return
	}
	page := loginPage{Next: localPath(r.PostForm.Get("next"))}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		page.Error = "Paste a token."
		w.render(rw, r, http.StatusBadRequest, "login", "Sign in", page)
		return
	}
	t, err := w.s.cfg.Store.TokenByHash(r.Context(), HashToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		page.Error = "That token is not valid."
	case err != nil:
		w.failErr(rw, r, fmt.Errorf("check the token: %w", err))
		return
	case refused(t, time.Now()) != "":
		page.Error = "That token cannot sign in: " + refused(t, time.Now()) + "."
	case t.Machine != "":
		page.Error = fmt.Sprintf("That is a %s token: it belongs to a machine, not a person. Sign in with your own token.", t.Machine)
	}
	if page.Error != "" {
		w.render(rw, r, http.StatusUnauthorized, "login", "Sign in", page)
		return
	}
	http.SetCookie(rw, &http.Cookie{Name: TokenCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(webSession.Seconds())})
	http.Redirect(rw, r, page.Next, http.StatusSeeOther)
}

// logout forgets the cookie.
func (w *web) logout(rw http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		w.fail(rw, r, http.StatusForbidden, errors.New("the sign-out form was posted from another site"))
		return
	}
	http.SetCookie(rw, &http.Cookie{Name: TokenCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(rw, r, "/", http.StatusSeeOther)
}

// localPath keeps a redirect target on this site: a path, not "//host" or a URL.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return "/"
	}
	return p
}
