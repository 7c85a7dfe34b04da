package source

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// pushRecorder keeps what OnPush and AllowCreate were called with.
type pushRecorder struct {
	mu      sync.Mutex
	pushes  []recordedPush
	creates []string
}

type recordedPush struct {
	repo string
	ups  []RefUpdate
}

func (p *pushRecorder) created() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.creates)
}

// take returns the pushes recorded since the last call.
func (p *pushRecorder) take() []recordedPush {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.pushes
	p.pushes = nil
	return got
}

// serveHosting starts a Hosting under /git/ of a test server and returns it with its
// recorder and the base URL of its repositories.
func serveHosting(t *testing.T, allowCreate bool, wrap func(http.Handler) http.Handler) (*Hosting, *pushRecorder, string) {
	t.Helper()
	rec := &pushRecorder{}
	h := &Hosting{
		Root: filepath.Join(t.TempDir(), "repos"),
		OnPush: func(ctx context.Context, repo string, ups []RefUpdate) {
			if ctx.Err() != nil {
				panic("OnPush got a cancelled context")
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.pushes = append(rec.pushes, recordedPush{repo, ups})
		},
		AllowCreate: func(repo string) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.creates = append(rec.creates, repo)
			if !allowCreate {
				return fmt.Errorf("project %q: the name is taken", repo)
			}
			return nil
		},
	}
	var handler http.Handler = http.StripPrefix("/git", h)
	if wrap != nil {
		handler = wrap(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return h, rec, srv.URL + "/git/"
}

func wantPushes(t *testing.T, rec *pushRecorder, want ...recordedPush) {
	t.Helper()
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Errorf("OnPush calls:\n got %+v\nwant %+v", got, want)
	}
}

func TestHostingMissingRepository(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("AllowCreate=%v", allow), func(t *testing.T) {
			work := workRepo(t)
			commit(t, work, "first", map[string]string{"a.txt": "a"})
			h, rec, base := serveHosting(t, allow, nil)

			// Fetching never creates a repository.
			out, err := gitOut(work, "clone", "-q", base+"app.git", filepath.Join(t.TempDir(), "clone"))
			if err == nil || !strings.Contains(out, "not found") {
				t.Errorf("clone of a missing repository: %v, output %q; want git's 'not found'", err, out)
			}
			resp, err := http.Get(base + "app.git/info/refs?service=git-upload-pack")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET info/refs of a missing repository: %s, want 404", resp.Status)
			}
			if c := rec.created(); len(c) != 0 {
				t.Errorf("AllowCreate asked on fetch: %q", c)
			}

			out, err = gitOut(work, "push", "-q", base+"app.git", "main")
			_, statErr := os.Stat(h.RepoPath("app"))
			if allow {
				if err != nil || statErr != nil {
					t.Errorf("push with AllowCreate: %v (repository: %v)", err, statErr)
				}
				return
			}
			// git shows the refusal's reason to the person pushing.
			if err == nil || !strings.Contains(out, `remote: project "app": the name is taken`) {
				t.Errorf("push refused by AllowCreate: %v, output %q; want the reason as a remote: line", err, out)
			}
			if statErr == nil {
				t.Error("a refused push created the repository")
			}
			if c := rec.created(); !slices.Equal(c, []string{"app"}) {
				t.Errorf("AllowCreate calls = %q, want [app]", c)
			}
			wantPushes(t, rec)
		})
	}
}

func TestHostingPushAndFetch(t *testing.T) {
	work := workRepo(t)
	h, rec, base := serveHosting(t, true, nil)
	url := base + "shop.git"
	push := func(args ...string) {
		t.Helper()
		gitTB(t, work, append([]string{"push", "-q", url}, args...)...)
	}

	c1 := commit(t, work, "first", map[string]string{"a.txt": "1"})
	push("main")
	wantPushes(t, rec, recordedPush{"shop", []RefUpdate{{Ref: "refs/heads/main", New: c1}}})
	repo := h.RepoPath("shop")
	if got := gitTB(t, repo, "symbolic-ref", "HEAD"); got != "refs/heads/main" {
		t.Errorf("HEAD of the new repository = %s, want refs/heads/main", got)
	}
	if got := gitTB(t, repo, "config", "http.receivepack"); got != "true" {
		t.Errorf("http.receivepack = %q, want true", got)
	}

	c2 := commit(t, work, "second", map[string]string{"a.txt": "2"})
	push("main")
	wantPushes(t, rec, recordedPush{"shop", []RefUpdate{{Ref: "refs/heads/main", Old: c1, New: c2}}})

	gitTB(t, work, "branch", "one", c1)
	gitTB(t, work, "branch", "two", c2)
	gitTB(t, work, "tag", "v1", c2)
	push("one", "two", "v1")
	wantPushes(t, rec, recordedPush{"shop", []RefUpdate{
		{Ref: "refs/heads/one", New: c1}, {Ref: "refs/heads/two", New: c2}, {Ref: "refs/tags/v1", New: c2}}})

	push("--delete", "one")
	wantPushes(t, rec, recordedPush{"shop", []RefUpdate{{Ref: "refs/heads/one", Old: c1}}})

	push("main") // nothing new
	wantPushes(t, rec)

	// Clone and fetch, with both protocol versions.
	for _, version := range []string{"0", "2"} {
		clone := filepath.Join(t.TempDir(), "clone")
		gitTB(t, "", "-c", "protocol.version="+version, "clone", "-q", url, clone)
		if got := gitTB(t, clone, "rev-parse", "HEAD"); got != c2 {
			t.Errorf("v%s clone: HEAD = %s, want %s", version, got, c2)
		}
		c3 := commit(t, work, "third "+version, map[string]string{"b.txt": version})
		push("main")
		rec.take()
		gitTB(t, clone, "-c", "protocol.version="+version, "fetch", "-q")
		if got := gitTB(t, clone, "rev-parse", "origin/main"); got != c3 {
			t.Errorf("v%s fetch: origin/main = %s, want %s", version, got, c3)
		}
		c2 = c3
		gitTB(t, work, "reset", "-q", "--hard", c2)
	}
}

// TestHostingLargePush pushes a pack bigger than git's http.postBuffer, which git sends
// with a chunked body.
func TestHostingLargePush(t *testing.T) {
	work := workRepo(t)
	var chunked atomic.Bool
	_, rec, base := serveHosting(t, true, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.ContentLength < 0 {
				chunked.Store(true)
			}
			next.ServeHTTP(w, r)
		})
	})
	big := make([]byte, 300<<10) // random: does not compress
	rand.Read(big)
	c := commit(t, work, "big", map[string]string{"big.bin": string(big)})
	gitTB(t, work, "-c", "http.postBuffer=65536", "push", "-q", base+"big.git", "main")
	if !chunked.Load() {
		t.Error("git did not send a chunked body: the test tests nothing")
	}
	wantPushes(t, rec, recordedPush{"big", []RefUpdate{{Ref: "refs/heads/main", New: c}}})
	clone := filepath.Join(t.TempDir(), "clone")
	gitTB(t, "", "clone", "-q", base+"big.git", clone)
	if got, _ := os.ReadFile(filepath.Join(clone, "big.bin")); string(got) != string(big) {
		t.Error("big.bin differs after the round trip")
	}
}

func TestHostingRemoteUser(t *testing.T) {
	work := workRepo(t)
	h, rec, base := serveHosting(t, true, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, _, ok := r.BasicAuth(); !ok {
				w.Header().Set("WWW-Authenticate", `Basic realm="drover"`)
				http.Error(w, "log in", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	url := strings.Replace(base, "http://", "http://alice:secret@", 1) + "app.git"
	commit(t, work, "first", map[string]string{"a": "a"})
	gitTB(t, work, "push", "-q", url, "main")
	marker := filepath.Join(t.TempDir(), "user")
	hook := filepath.Join(h.RepoPath("app"), "hooks", "post-receive")
	os.MkdirAll(filepath.Dir(hook), 0o755)
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$REMOTE_USER\" > '"+marker+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	commit(t, work, "second", map[string]string{"a": "b"})
	gitTB(t, work, "push", "-q", url, "main")
	if got, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(got)) != "alice" {
		t.Errorf("REMOTE_USER seen by the hook = %q, %v; want alice", got, err)
	}
	if got := rec.take(); len(got) != 2 {
		t.Errorf("OnPush calls = %+v, want 2", got)
	}
}

func TestHostingRefusesBadRequests(t *testing.T) {
	workRepo(t)
	h, _, base := serveHosting(t, true, nil)
	os.MkdirAll(h.Root, 0o755)
	gitTB(t, "", "init", "-q", "--bare", filepath.Join(h.Root, ".hidden.git"))
	gitTB(t, "", "init", "-q", "--bare", filepath.Join(filepath.Dir(h.Root), "outside.git"))
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", ".hidden.git/info/refs?service=git-upload-pack", 404},
		{"GET", "../outside.git/info/refs?service=git-upload-pack", 404},
		{"GET", "..%2Foutside.git/info/refs?service=git-upload-pack", 404},
		{"GET", "a%2F..%2F..%2Foutside.git/info/refs?service=git-upload-pack", 404},
		{"GET", "x/y.git/info/refs?service=git-upload-pack", 404},
		{"GET", "noext/info/refs?service=git-upload-pack", 404},
		{"GET", strings.Repeat("a", 101) + ".git/info/refs?service=git-receive-pack", 404},
		{"GET", "new.git/HEAD", 404},
		{"GET", "new.git/objects/info/packs", 404},
		{"GET", "new.git/info/refs", 403},                 // the dumb protocol
		{"GET", "new.git/info/refs?service=git-foo", 403}, // no such service
		{"POST", "new.git/info/refs?service=git-upload-pack", 405},
		{"GET", "new.git/git-receive-pack", 405},
		{"POST", "missing.git/git-upload-pack", 404},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.status)
		}
	}
	if entries, _ := os.ReadDir(h.Root); len(entries) != 1 {
		t.Errorf("Root holds %d entries after bad requests, want only .hidden.git", len(entries))
	}
	for _, name := range []string{"", ".git", "..", "a/b", "a b", "é", strings.Repeat("x", 101)} {
		if ValidName(name) || h.RepoPath(name) != "" {
			t.Errorf("ValidName(%q) = true or RepoPath not empty", name)
		}
	}
	for _, name := range []string{"a", "my-app_2.0", "X.git", strings.Repeat("x", 100)} {
		if !ValidName(name) {
			t.Errorf("ValidName(%q) = false", name)
		}
	}
}

// TestHostingConcurrentPushes pushes to two repositories, and several branches to one,
// at the same time: each OnPush call must hold exactly its own push's ref.
func TestHostingConcurrentPushes(t *testing.T) {
	work := workRepo(t)
	_, rec, base := serveHosting(t, true, nil)
	c := commit(t, work, "first", map[string]string{"a": "a"})
	for _, repo := range []string{"one", "two"} { // create them first: creation is tested elsewhere
		gitTB(t, work, "push", "-q", base+repo+".git", "main")
	}
	rec.take()
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for _, repo := range []string{"one", "two"} {
		for i := range 4 {
			wg.Go(func() {
				_, err := gitOut(work, "push", "-q", base+repo+".git", fmt.Sprintf("main:refs/heads/b%d", i))
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := map[string][]string{}
	for _, p := range rec.take() {
		if len(p.ups) != 1 || p.ups[0].Old != "" || p.ups[0].New != c {
			t.Errorf("OnPush(%s, %+v): want one created branch at %s", p.repo, p.ups, c)
			continue
		}
		got[p.repo] = append(got[p.repo], p.ups[0].Ref)
	}
	want := []string{"refs/heads/b0", "refs/heads/b1", "refs/heads/b2", "refs/heads/b3"}
	for _, repo := range []string{"one", "two"} {
		slices.Sort(got[repo])
		if !slices.Equal(got[repo], want) {
			t.Errorf("refs reported for %s = %q, want %q", repo, got[repo], want)
		}
	}
}
