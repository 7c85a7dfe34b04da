package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// RefUpdate is a ref that a push or a fetch changed.
type RefUpdate struct {
	Ref string // full name: refs/heads/main, refs/tags/v1.2
	Old string // hash before; "" when the ref was created
	New string // hash after; "" when the ref was deleted
}

// Hosting serves the bare repositories NAME.git in Root over git's smart HTTP protocol,
// through git http-backend. It expects request paths like /NAME.git/info/refs,
// /NAME.git/git-upload-pack and /NAME.git/git-receive-pack: mount it with
// http.StripPrefix. It does no authentication or authorisation: wrap it in a handler that
// does; the request's basic-auth user reaches git hooks as REMOTE_USER. The repositories
// it creates accept pushes from whoever reaches it (http.receivepack); others only from
// requests with a basic-auth user, as git http-backend decides.
//
// Pushes to one repository are serialised, so that OnPush learns exactly what each one
// changed; fetches and clones run side by side.
type Hosting struct {
	// Root is the folder holding the repositories.
	Root string
	// OnPush, if set, is called after a push was accepted, with the repository's name and
	// the refs the push changed (sorted by name). It is called before the HTTP response
	// ends, so the pushing git client waits for it, and while the repository's next push
	// waits: it should hand the work on and return quickly. Its context is not cancelled
	// when the request ends.
	OnPush func(ctx context.Context, repo string, updates []RefUpdate)
	// AllowCreate, if set, says whether a push may create repository repo when it does
	// not exist: nil lets it, an error refuses it with 403 and the error's text, which
	// git shows its user as "remote: ...". Without AllowCreate such a push gets 404.
	AllowCreate func(repo string) error
	// Log receives what goes wrong while serving; nil logs to slog.Default().
	Log *slog.Logger
}

func (h *Hosting) logger() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// full reports a write that failed because the disk or the quota is full.
func full(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// ValidName reports whether name can name a hosted repository: 1 to 100 ASCII letters,
// digits, '-', '_' and '.', not starting with '.'.
func ValidName(name string) bool {
	if name == "" || len(name) > 100 || name[0] == '.' {
		return false
	}
	for _, c := range []byte(name) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// RepoPath returns the folder of repository name, Root/NAME.git, or "" when name is not a
// ValidName.
func (h *Hosting) RepoPath(name string) string {
	if !ValidName(name) {
		return ""
	}
	return filepath.Join(h.Root, name+".git")
}

// ServeHTTP answers one request of git's smart HTTP protocol.
func (h *Hosting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo, endpoint, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	name, isGit := strings.CutSuffix(repo, ".git")
	if !ok || !isGit || !ValidName(name) {
		http.NotFound(w, r)
		return
	}
	service, method := r.URL.Query().Get("service"), http.MethodGet
	switch endpoint {
	case "info/refs":
	case "git-upload-pack", "git-receive-pack":
		service, method = endpoint, http.MethodPost
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if service != "git-upload-pack" && service != "git-receive-pack" {
		http.Error(w, "only git's smart HTTP protocol is served", http.StatusForbidden)
		return
	}
	root, err := filepath.Abs(h.Root)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	dir := filepath.Join(root, repo)
	if filepath.Dir(dir) != root { // cannot happen with a ValidName; never serve outside Root
		http.NotFound(w, r)
		return
	}
	push := service == "git-receive-pack"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if !push || h.AllowCreate == nil || !errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		if err := h.AllowCreate(name); err != nil {
			// text/plain: git prints the body of a refused ref discovery to its user.
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if err := createRepo(r.Context(), root, dir); err != nil {
			h.logger().Error("git: create a repository", "repository", name, "err", err)
			if full(err) {
				http.Error(w, "no space left on device: the Drover server's disk is full; free space there and push again", http.StatusInsufficientStorage)
				return
			}
			http.Error(w, "create repository: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if endpoint != "git-receive-pack" || h.OnPush == nil {
		h.backend(w, r, root, repo+"/"+endpoint)
		return
	}
	unlock := lockRepo(dir)
	defer unlock()
	before, err := listRefs(r.Context(), dir, "")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.backend(w, r, root, repo+"/"+endpoint)
	// The response may be all written; the refs are read even if the client went away.
	ctx := context.WithoutCancel(r.Context())
	after, err := listRefs(ctx, dir, "")
	if err != nil {
		h.logger().Error("git: read the refs after a push", "repository", name, "err", err)
		return
	}
	if ups := diffRefs(before, after); len(ups) > 0 {
		h.OnPush(ctx, name, ups)
	}
}

// backend hands the request to git http-backend, for the file at path in root.
func (h *Hosting) backend(w http.ResponseWriter, r *http.Request, root, path string) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r = r.Clone(r.Context())
	r.URL.Path, r.URL.RawPath = "/"+path, "" // the CGI's PATH_INFO, under GIT_PROJECT_ROOT
	if r.ContentLength < 0 {
		// net/http/cgi refuses chunked bodies, and git sends pushes over http.postBuffer
		// (1 MiB) chunked: spool the body to give it a length.
		rec := &headRecorder{r: r.Body}
		body, n, err := spool(rec, root)
		switch {
		case full(err):
			h.logger().Error("git: no space left on device for a push", "repository", path, "err", err)
			refusePush(w, r.Body, rec.head, http.StatusInsufficientStorage,
				"no space left on device: the Drover server's disk is full; free space there and push again")
			return
		case err != nil:
			h.logger().Warn("git: read a push", "repository", path, "err", err)
			http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
			return
		}
		defer body.Close()
		r.Body, r.ContentLength, r.TransferEncoding = body, n, nil
	}
	env := []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		env = append(env, "REMOTE_USER="+user)
	}
	cgiHandler := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Dir:  root,
		Env:  env,
		// What git's own configuration depends on; the CGI environment starts empty.
		InheritEnv: []string{"HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "GIT_EXEC_PATH", "TMPDIR"},
	}
	cgiHandler.ServeHTTP(w, r)
}

// spool copies body to an unnamed temporary file in dir and returns it rewound, with its
// size.
func spool(body io.Reader, dir string) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, ".body-*")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(f.Name()) // gone when closed
	n, err := io.Copy(f, body)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, n, nil
}

// createRepo makes dir an empty bare repository on branch main that accepts pushes. It
// prepares the repository beside dir and renames it into place, so a request never sees
// one half made.
func createRepo(ctx context.Context, root, dir string) error {
	unlock := lockRepo(dir)
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		return nil // made by the request that held the lock before
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, ".new-*") // a '.' name no request can reach
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := runGit(ctx, "", nil, nil, "init", "--quiet", "--bare", "--initial-branch=main", "--shared=0600", "--", tmp); err != nil {
		return err
	}
	// --shared=0600 keeps the files private to the server whatever its umask; it also
	// refuses force pushes, which a hosted repository takes.
	for _, kv := range [][2]string{{"http.receivepack", "true"}, {"receive.denyNonFastforwards", "false"}} {
		if _, err := runGit(ctx, "", nil, nil, "--git-dir="+tmp, "config", kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("create repository: %w", err)
	}
	return nil
}

// lockRepo serialises the changes to the repository at dir — pushes, Mirror's fetches,
// its creation — across goroutines and processes, with an flock on DIR.lock beside it,
// and returns the function that unlocks it. Locking is best effort: when the lock file
// cannot be made, the change goes ahead unlocked (and creating the repository will say why).
func lockRepo(dir string) (unlock func()) {
	dir = strings.TrimSuffix(dir, string(filepath.Separator))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return func() {}
	}
	f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return func() {}
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	return func() { f.Close() } // closing the descriptor drops the lock
}
