package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/engine"
)

// workspace is what the agent knows of one of its workspaces. The steps of a run share
// it, as they do on the server.
type workspace struct {
	prep  sync.Mutex // held while a lease prepares it
	users int        // leases using it; under agent.mu
	gone  bool       // forgotten while in use: removed by its last user; under agent.mu
	run   string     // Lease.Run of its leases
	// has are the layers the workspace holds already (unpacked into it, or packed from
	// it): inputs not to fetch again. Under prep.
	has map[digest.Digest]bool
}

// had records that the workspace holds d.
func (w *workspace) had(d digest.Digest) {
	w.prep.Lock()
	defer w.prep.Unlock()
	w.has[d] = true
}

// commitID is a full SHA-1 or SHA-256 commit id.
var commitID = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// checkName refuses a workspace name that is not one folder name.
func checkName(name string) error {
	if name == "" || name == "." || strings.Contains(name, "..") || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("bad workspace name %q", name)
	}
	return nil
}

// acquire counts a lease in as a user of the named workspace and returns it and its
// folder.
func (a *agent) acquire(name, run string) (*workspace, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ws := a.workspaces[name]
	if ws == nil {
		ws = &workspace{has: map[digest.Digest]bool{}, run: run}
		a.workspaces[name] = ws
	}
	ws.users++
	return ws, filepath.Join(a.spaces, name), nil
}

// release counts a lease out; the last user of a forgotten workspace removes it.
func (a *agent) release(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ws := a.workspaces[name]
	if ws.users--; ws.users == 0 && ws.gone {
		delete(a.workspaces, name)
		a.removeLocked(name, ws.run)
	}
}

// forget removes a workspace the server says is no longer needed, once no lease uses it.
func (a *agent) forget(name string) {
	if err := checkName(name); err != nil {
		a.log.Warn("the server asked to remove a workspace by a name that is not one; refused", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ws := a.workspaces[name]
	if ws != nil && ws.users > 0 {
		ws.gone = true
		return
	}
	delete(a.workspaces, name)
	run := ""
	if ws != nil {
		run = ws.run
	}
	a.removeLocked(name, run)
}

// removeLocked moves the workspace's folder out of the way at once and removes it in the
// background, so that a lease given the name later finds it gone. When it was the last
// workspace of run here, the backend is told the run ended (a container backend removes
// the run's network). a.mu is held.
func (a *agent) removeLocked(name, run string) {
	if ender, ok := a.cfg.Backend.(engine.RunEnder); ok && run != "" && !a.runHereLocked(run) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ender.EndRun(ctx, run)
		}()
	}
	dir := filepath.Join(a.spaces, name)
	trash := filepath.Join(a.trash, name+"."+rand.Text())
	if err := os.Rename(dir, trash); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("remove a workspace", "workspace", name, "err", err)
		}
		return
	}
	a.log.Info("workspace removed", "workspace", name)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := os.RemoveAll(trash); err != nil {
			a.log.Warn("remove a workspace", "workspace", name, "err", err)
		}
	}()
}

// runHereLocked reports whether a workspace of run is still here. a.mu is held.
func (a *agent) runHereLocked(run string) bool {
	for _, ws := range a.workspaces {
		if ws.run == run {
			return true
		}
	}
	return false
}

// prepare makes dir the lease's workspace: a checkout of the run's commit when it is new
// (or the lease wants it fresh), with the lease's inputs unpacked into it.
func (l *lease) prepare(ws *workspace, dir string) error {
	ws.prep.Lock()
	defer ws.prep.Unlock()
	if l.p.Fresh {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		clear(ws.has)
		if err := l.checkout(dir); err != nil {
			os.RemoveAll(dir)
			return err
		}
	} else if err != nil {
		return err
	}
	for _, in := range l.p.Inputs {
		if ws.has[in.Digest] {
			continue
		}
		if err := l.fetchInput(in, dir); err != nil {
			return err
		}
		ws.has[in.Digest] = true
	}
	return nil
}

// checkout makes dir a git working tree at the lease's commit, fetched from the server
// with the lease's token. The token goes to git through its environment: never to disk
// or to a command line.
func (l *lease) checkout(dir string) error {
	c := l.p.Checkout
	if !commitID.MatchString(c.Commit) {
		return fmt.Errorf("bad commit %q: not a full commit id", c.Commit)
	}
	// Only the server's own git: a lease cannot send the agent, and its credential,
	// anywhere else.
	if c.URL == "" || !strings.HasPrefix(c.URL, "/") || strings.HasPrefix(c.URL, "//") || strings.Contains(c.URL, "..") {
		return fmt.Errorf("bad git URL %q: want a path on the server", c.URL)
	}
	url := trimSlash(l.a.cfg.Server) + c.URL
	return l.a.checkout(l, url, c.Commit, dir)
}

func (l *lease) git(dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(l.ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=http.extraHeader",
		"GIT_CONFIG_VALUE_0=Authorization: Bearer "+l.p.Token,
		"GIT_CONFIG_KEY_1=gc.auto", // the repository cache keeps what workspaces borrow
		"GIT_CONFIG_VALUE_1=0",
	)
	if l.a.cfg.CAFile != "" {
		ca, err := filepath.Abs(l.a.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, "GIT_SSL_CAINFO="+ca)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if l.ctx.Err() != nil {
			return nil, context.Cause(l.ctx)
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		return nil, fmt.Errorf("git %s: %w: %s", args[0], err, msg)
	}
	return stdout.Bytes(), nil
}

// fetchInput downloads a layer from the lease's repository and unpacks it into dir,
// checking its digest while it reads.
func (l *lease) fetchInput(desc ocispec.Descriptor, dir string) error {
	if desc.MediaType != "" && desc.MediaType != artifact.LayerMediaType {
		return fmt.Errorf("input %s: unsupported media type %q", desc.Digest, desc.MediaType)
	}
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("input %q: %w", desc.Digest, err)
	}
	bo := backoff{min: 500 * time.Millisecond, max: 5 * time.Second}
	var err error
	for range pushTries {
		var status int
		if status, err = l.fetchOnce(desc, dir); err == nil {
			return nil
		}
		if (status != 0 && !transient(status)) || l.ctx.Err() != nil || errors.Is(err, artifact.ErrDigestMismatch) {
			break
		}
		l.log.Warn("fetch an input; will retry", "digest", desc.Digest, "err", err)
		if !bo.wait(l.ctx) {
			break
		}
	}
	if l.ctx.Err() != nil {
		return context.Cause(l.ctx)
	}
	return fmt.Errorf("input %s: %w", desc.Digest, err)
}

func (l *lease) fetchOnce(desc ocispec.Descriptor, dir string) (int, error) {
	url := l.a.url("/v2/" + l.p.Repository + "/blobs/" + desc.Digest.String())
	resp, err := l.a.do(l.ctx, http.MethodGet, url, l.p.Token, nil, nil)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, answerError(resp)
	}
	r := &verifying{r: resp.Body, d: desc.Digest, v: desc.Digest.Verifier(), want: desc.Size}
	if err := artifact.Extract(l.ctx, r, dir); err != nil {
		return 0, err
	}
	return 0, r.err
}

// verifying reads r, and at its end fails unless what it read has digest d (and size
// want, when it is above 0).
type verifying struct {
	r    io.Reader
	d    digest.Digest
	v    digest.Verifier
	n    int64
	want int64
	err  error
}

func (r *verifying) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.v.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF {
		switch {
		case r.want > 0 && r.n != r.want:
			r.err = fmt.Errorf("blob %s: %d bytes, expected %s: %w", r.d, r.n, strconv.FormatInt(r.want, 10), artifact.ErrDigestMismatch)
		case !r.v.Verified():
			r.err = fmt.Errorf("blob %s: %w", r.d, artifact.ErrDigestMismatch)
		}
		if r.err != nil {
			return n, r.err
		}
	}
	return n, err
}
