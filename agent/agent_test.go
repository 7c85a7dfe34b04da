package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
)

const agentToken = "agent-token-123"

// fake is a Drover server as far as an agent sees it: the three agent routes, a
// registry's blob routes and git over HTTP (git http-backend), each checking tokens.
type fake struct {
	t      *testing.T
	srv    *httptest.Server
	commit string

	mu         sync.Mutex
	wake       chan struct{}
	queue      []agentproto.Lease
	stops      []int64
	forgets    []string
	polls      []agentproto.Poll
	tokens     map[int64]string
	logs       map[int64][]byte
	dones      map[int64][]agentproto.Done
	blobs      map[digest.Digest][]byte
	logStatus  map[int64]int // a status /log answers for a lease; -1 for every lease
	downStatus int           // answered to /log and /done while set
	gitFetches int
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, wake: make(chan struct{}, 1), tokens: map[int64]string{}, logs: map[int64][]byte{},
		dones: map[int64][]agentproto.Done{}, blobs: map[digest.Digest][]byte{}, logStatus: map[int64]int{}}
	root := t.TempDir()
	f.commit = makeRepo(t, filepath.Join(root, "shop.git"))
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	git := &cgi.Handler{Path: gitPath, Root: "/git", Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentproto.PollPath, f.poll)
	mux.HandleFunc("POST "+agentproto.LeasePath+"{id}/log", f.log)
	mux.HandleFunc("POST "+agentproto.LeasePath+"{id}/done", f.done)
	mux.HandleFunc("/v2/", f.registry)
	mux.HandleFunc("/git/", func(w http.ResponseWriter, r *http.Request) {
		if !f.leaseToken(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		f.gitFetches++
		f.mu.Unlock()
		git.ServeHTTP(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// makeRepo makes a bare repository at bare with one commit and returns its hash.
func makeRepo(t *testing.T, bare string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	run := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	run(src, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello from git\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(src, "add", "README")
	run(src, "commit", "-q", "-m", "first")
	commit := run(src, "rev-parse", "HEAD")
	run(src, "clone", "-q", "--bare", src, bare)
	return commit
}

func (f *fake) leaseToken(r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tok := range f.tokens {
		if r.Header.Get("Authorization") == "Bearer "+tok {
			return true
		}
	}
	return false
}

func (f *fake) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fake) poll(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+agentToken {
		http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
		return
	}
	var p agentproto.Poll
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		f.t.Errorf("poll: %v", err)
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	if p.Wait != 10*time.Second || p.Name == "" || p.Capacity < 1 {
		f.t.Errorf("poll: %+v", p)
	}
	f.mu.Lock()
	f.polls = append(f.polls, p)
	f.mu.Unlock()
	timer := time.NewTimer(50 * time.Millisecond)
	defer timer.Stop()
	for {
		f.mu.Lock()
		if len(f.queue) > 0 || len(f.stops) > 0 || len(f.forgets) > 0 {
			reply := agentproto.PollReply{Leases: f.queue, Stop: f.stops, Forget: f.forgets, LeasePeriod: time.Minute}
			f.queue, f.stops, f.forgets = nil, nil, nil
			f.mu.Unlock()
			writeJSON(w, reply)
			return
		}
		f.mu.Unlock()
		select {
		case <-f.wake:
		case <-timer.C:
			writeJSON(w, agentproto.PollReply{LeasePeriod: time.Minute})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// leaseOf checks the request's lease token and returns the lease's id.
func (f *fake) leaseOf(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	f.mu.Lock()
	tok, ok := f.tokens[id]
	f.mu.Unlock()
	if err != nil || !ok || r.Header.Get("Authorization") != "Bearer "+tok {
		http.Error(w, "who?", http.StatusUnauthorized)
		f.t.Errorf("%s: bad lease or token", r.URL.Path)
		return 0, false
	}
	return id, true
}

func (f *fake) log(w http.ResponseWriter, r *http.Request) {
	id, ok := f.leaseOf(w, r)
	if !ok {
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	off, err := strconv.ParseInt(r.Header.Get(agentproto.OffsetHeader), 10, 64)
	if err != nil {
		f.t.Errorf("log offset: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.logStatus[id]; s != 0 {
		http.Error(w, `{"error":"given up"}`, s)
		return
	}
	if f.downStatus != 0 {
		http.Error(w, "restarting", f.downStatus)
		return
	}
	have := f.logs[id]
	if off > int64(len(have)) {
		f.t.Errorf("lease %d: a chunk at %d past the %d bytes the server has: a gap", id, off, len(have))
		http.Error(w, "gap", http.StatusBadRequest)
		return
	}
	overlap := min(int64(len(have))-off, int64(len(data)))
	if !bytes.Equal(have[off:off+overlap], data[:overlap]) {
		f.t.Errorf("lease %d: a chunk sent again at %d differs", id, off)
	}
	f.logs[id] = append(have, data[overlap:]...)
	w.WriteHeader(http.StatusNoContent)
}

func (f *fake) done(w http.ResponseWriter, r *http.Request) {
	id, ok := f.leaseOf(w, r)
	if !ok {
		return
	}
	var d agentproto.Done
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		f.t.Errorf("done: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.downStatus != 0 {
		http.Error(w, "restarting", f.downStatus)
		return
	}
	if d.LogSize != int64(len(f.logs[id])) {
		f.t.Errorf("lease %d: done says %d log bytes, the server has %d", id, d.LogSize, len(f.logs[id]))
	}
	f.dones[id] = append(f.dones[id], d)
	w.WriteHeader(http.StatusNoContent)
}

// registry serves the blob routes of the distribution spec, for any repository.
func (f *fake) registry(w http.ResponseWriter, r *http.Request) {
	if !f.leaseToken(r) {
		http.Error(w, "who?", http.StatusUnauthorized)
		return
	}
	repo, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/")
	if !ok || repo != "shop" {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodPost && rest == "uploads/":
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/u"+strconv.Itoa(int(time.Now().UnixNano())))
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && strings.HasPrefix(rest, "uploads/"):
		data, _ := io.ReadAll(r.Body)
		d := digest.Digest(r.URL.Query().Get("digest"))
		if digest.FromBytes(data) != d {
			http.Error(w, "digest", http.StatusBadRequest)
			f.t.Errorf("pushed blob does not match its digest %s", d)
			return
		}
		f.mu.Lock()
		f.blobs[d] = data
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		f.mu.Lock()
		data, ok := f.blobs[digest.Digest(rest)]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if r.Method == http.MethodGet {
			w.Write(data)
		}
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
	}
}

// lease makes a lease of script in workspace ws.
func (f *fake) lease(id int64, ws, script string) agentproto.Lease {
	return agentproto.Lease{ID: id, Token: fmt.Sprintf("lease-token-%d", id), Workspace: ws,
		Checkout: agentproto.Checkout{URL: "/git/shop.git", Commit: f.commit}, Repository: "shop",
		Name: fmt.Sprintf("step%d", id), Step: &pipeline.Step{Name: fmt.Sprintf("step%d", id), Run: script},
		Script: script, Attempt: 1, Run: "7"}
}

func (f *fake) give(ls ...agentproto.Lease) {
	f.mu.Lock()
	for _, l := range ls {
		f.tokens[l.ID] = l.Token
	}
	f.queue = append(f.queue, ls...)
	f.mu.Unlock()
	f.poke()
}

func (f *fake) stop(ids ...int64) {
	f.mu.Lock()
	f.stops = append(f.stops, ids...)
	f.mu.Unlock()
	f.poke()
}

func (f *fake) forget(names ...string) {
	f.mu.Lock()
	f.forgets = append(f.forgets, names...)
	f.mu.Unlock()
	f.poke()
}

func (f *fake) logOf(id int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.logs[id])
}

func (f *fake) donesOf(id int64) []agentproto.Done {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]agentproto.Done(nil), f.dones[id]...)
}

// waitDone waits for lease id's result.
func (f *fake) waitDone(id int64, within time.Duration) agentproto.Done {
	f.t.Helper()
	waitFor(f.t, within, fmt.Sprintf("the result of lease %d", id), func() bool { return len(f.donesOf(id)) > 0 })
	return f.donesOf(id)[0]
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start runs an agent against f until the test ends.
func start(t *testing.T, f *fake, change func(*Config)) Config {
	t.Helper()
	cfg := Config{Server: f.srv.URL, Token: agentToken, Name: "a1", Labels: map[string]string{"os": "linux"},
		Capacity: 2, WorkDir: filepath.Join(t.TempDir(), "agent"), Backend: &process.Backend{Grace: time.Second},
		Version: "test", Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if change != nil {
		change(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ended:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestLeaseRunsAndReports(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := start(t, f, nil)
	const secret = "hunter2-very-secret"
	script := `cat README
echo "token: $SECRET_TOKEN"
echo "ws: $DROVER_WORKSPACE"
mkdir -p dist
echo built > dist/app.txt
cat > junit.xml <<'EOF'
<testsuite name="s" tests="2"><testcase name="a"/><testcase name="b"><failure message="boom"/></testcase></testsuite>
EOF
`
	l := f.lease(1, "run-7", script)
	l.Env = []string{"SECRET_TOKEN=" + secret, "DROVER_WORKSPACE=/elsewhere"}
	l.Hidden = []string{secret}
	l.Step.Artifacts = []string{"dist"}
	l.Step.Reports.JUnit = []string{"junit.xml"}
	f.give(l)
	done := f.waitDone(1, 20*time.Second)

	ws := filepath.Join(cfg.WorkDir, "workspaces", "run-7")
	log := f.logOf(1)
	want := "hello from git\ntoken: ***\nws: " + ws + "\n"
	if log != want {
		t.Errorf("log = %q, want %q", log, want)
	}
	if done.ExitCode != 0 || done.Error != "" || done.LogSize != int64(len(want)) {
		t.Errorf("done = %+v", done)
	}
	if r := done.Reports; r == nil || r.Tests == nil || r.Tests.Passed != 1 || r.Tests.Failed != 1 {
		t.Errorf("reports = %+v", done.Reports)
	}
	if len(done.Artifacts) != 1 || done.ArtifactError != "" {
		t.Fatalf("artifacts = %+v (%s)", done.Artifacts, done.ArtifactError)
	}
	desc := done.Artifacts[0]
	f.mu.Lock()
	blob, ok := f.blobs[desc.Digest]
	f.mu.Unlock()
	if !ok || digest.FromBytes(blob) != desc.Digest || int64(len(blob)) != desc.Size || desc.Annotations[ocispec.AnnotationTitle] != "dist" {
		t.Errorf("pushed artifact: %v %+v", ok, desc)
	}
	// The lease's token is not written anywhere in the workspace (git's config included).
	gitConfig, err := os.ReadFile(filepath.Join(ws, ".git", "config"))
	if err != nil || strings.Contains(string(gitConfig), l.Token) {
		t.Errorf(".git/config: %v %q", err, gitConfig)
	}

	// A fresh workspace of another step gets the artifact as an input; a step of the
	// same workspace finds what the first left.
	l2 := f.lease(2, "run-7-fresh", "cat dist/app.txt; test ! -e junit.xml")
	l2.Fresh, l2.Inputs = true, done.Artifacts
	l3 := f.lease(3, "run-7", "cat junit.xml >/dev/null; echo failing; exit 3")
	l3.Step.Artifacts = []string{"dist"}
	f.give(l2, l3)
	if d := f.waitDone(2, 20*time.Second); d.ExitCode != 0 || f.logOf(2) != "built\n" {
		t.Errorf("lease 2: %+v, log %q", d, f.logOf(2))
	}
	if d := f.waitDone(3, 20*time.Second); d.ExitCode != 3 || d.Artifacts != nil || d.Error != "" || f.logOf(3) != "failing\n" {
		t.Errorf("lease 3: %+v, log %q", d, f.logOf(3))
	}
	f.mu.Lock()
	fetches := f.gitFetches
	f.mu.Unlock()
	if fetches == 0 {
		t.Errorf("git was not fetched over HTTP")
	}
	time.Sleep(300 * time.Millisecond)
	for id := int64(1); id <= 3; id++ {
		if n := len(f.donesOf(id)); n != 1 {
			t.Errorf("lease %d: %d results", id, n)
		}
	}
}

func TestStepFailsToPrepare(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	start(t, f, nil)
	l := f.lease(1, "w", "echo never")
	l.Checkout.Commit = "0123456789abcdef0123456789abcdef01234567"
	l2 := f.lease(2, "w2", "echo never")
	l2.Inputs = []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("x"), Size: 1}}
	// A commit that is no commit id, or a URL off the server, is refused before git
	// sees it: nothing outside the work folder is touched, no credential leaves.
	victim := t.TempDir()
	l3 := f.lease(3, "w3", "echo never")
	l3.Checkout.Commit = "x/../../../../../../../.." + victim
	l4 := f.lease(4, "w4", "echo never")
	l4.Checkout.URL = "file:///etc"
	l5 := f.lease(5, "w5", "echo never")
	l5.Checkout.URL = "//evil.example/shop.git"
	f.give(l, l2, l3, l4, l5)
	for _, id := range []int64{1, 2, 3, 4, 5} {
		d := f.waitDone(id, 20*time.Second)
		if !strings.HasPrefix(d.Error, "prepare the workspace: ") || f.logOf(id) != "" {
			t.Errorf("lease %d: %+v", id, d)
		}
	}
	if _, err := os.Stat(victim + ".new"); err == nil {
		t.Error("a commit id made the agent write outside its work folder")
	}
}

func TestStopKillsTheStep(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	start(t, f, nil)
	f.give(f.lease(1, "w", "echo started; sleep 30; echo never"))
	waitFor(t, 20*time.Second, "the step to start", func() bool { return f.logOf(1) == "started\n" })
	began := time.Now()
	f.stop(1)
	d := f.waitDone(1, 10*time.Second)
	if time.Since(began) > 5*time.Second || !strings.Contains(d.Error, "stopped by the server") || d.ExitCode == 0 {
		t.Errorf("done after %v: %+v", time.Since(began), d)
	}
}

func TestServerDownLosesNoLog(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	marker := filepath.Join(t.TempDir(), "ended")
	start(t, f, nil)
	f.mu.Lock()
	f.downStatus = http.StatusServiceUnavailable
	f.mu.Unlock()
	f.give(f.lease(1, "w", "seq 1 30000; touch "+marker))
	waitFor(t, 20*time.Second, "the step to end", func() bool { _, err := os.Stat(marker); return err == nil })
	time.Sleep(500 * time.Millisecond)
	if got := f.logOf(1); got != "" {
		t.Fatalf("the server took %d bytes while down", len(got))
	}
	f.mu.Lock()
	f.downStatus = 0
	f.mu.Unlock()
	d := f.waitDone(1, 20*time.Second)
	var want strings.Builder
	for i := 1; i <= 30000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if got := f.logOf(1); got != want.String() || d.LogSize != int64(want.Len()) || d.ExitCode != 0 {
		t.Errorf("got %d bytes, want %d; done %+v", len(got), want.Len(), d)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(f.donesOf(1)); n != 1 {
		t.Errorf("%d results", n)
	}
}

func TestTinyBufferDropsAndSaysSo(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	dir := t.TempDir()
	marker, goOn := filepath.Join(dir, "ended"), filepath.Join(dir, "go")
	start(t, f, func(c *Config) { c.LogBuffer = 1000 })
	f.mu.Lock()
	f.downStatus = http.StatusBadGateway
	f.mu.Unlock()
	f.give(f.lease(1, "w", "head -c 5000 /dev/zero | tr '\\0' a; touch "+marker+
		"; while [ ! -e "+goOn+" ]; do sleep 0.05; done; echo after"))
	waitFor(t, 20*time.Second, "the step's output", func() bool { _, err := os.Stat(marker); return err == nil })
	f.mu.Lock()
	f.downStatus = 0
	f.mu.Unlock()
	waitFor(t, 10*time.Second, "the note of dropped bytes", func() bool { return strings.Contains(f.logOf(1), "dropped") })
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := f.waitDone(1, 20*time.Second)
	got := f.logOf(1)
	wantStart := strings.Repeat("a", 1000) + "\n[drover agent: 4000 bytes of output dropped here"
	if !strings.HasPrefix(got, wantStart) || !strings.HasSuffix(got, "]\nafter\n") || d.LogSize != int64(len(got)) {
		t.Errorf("log %q, done %+v", got, d)
	}
}

func TestRefusedLogStopsTheAttempt(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	marker := filepath.Join(t.TempDir(), "ran-on")
	start(t, f, nil)
	f.mu.Lock()
	f.logStatus[1] = http.StatusConflict
	f.mu.Unlock()
	f.give(f.lease(1, "w", "echo x; sleep 5; touch "+marker))
	waitFor(t, 20*time.Second, "the lease to start", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.polls {
			if len(p.Running) == 1 {
				return true
			}
		}
		return false
	})
	waitFor(t, 4*time.Second, "the lease to end", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		p := f.polls[len(f.polls)-1]
		return len(p.Running) == 0 && p.Free == 2
	})
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the step was not stopped")
	}
	if n := len(f.donesOf(1)); n != 0 {
		t.Errorf("%d results for a refused attempt", n)
	}
}

func TestForgetRemovesWorkspaces(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := start(t, f, nil)
	f.give(f.lease(1, "w1", "true"))
	f.waitDone(1, 20*time.Second)
	ws := filepath.Join(cfg.WorkDir, "workspaces", "w1")
	if _, err := os.Stat(filepath.Join(ws, "README")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(cfg.WorkDir, "x")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	f.forget("../x", "..", "w1")
	waitFor(t, 10*time.Second, "the workspace's removal", func() bool { _, err := os.Stat(ws); return os.IsNotExist(err) })
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a Forget of ../x removed it: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.WorkDir, "workspaces")); err != nil {
		t.Error(err)
	}
}

// counting is a backend that counts the steps it runs at once.
type counting struct {
	engine.Backend
	now, most atomic.Int32
}

func (c *counting) Exec(ctx context.Context, spec *engine.Spec, out io.Writer) (int, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return c.Backend.Exec(ctx, spec, out)
}

func TestCapacityIsNeverExceeded(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	b := &counting{Backend: &process.Backend{}}
	start(t, f, func(c *Config) { c.Backend = b })
	var ls []agentproto.Lease
	for id := int64(1); id <= 5; id++ {
		ls = append(ls, f.lease(id, "w", "sleep 0.3"))
	}
	f.give(ls...) // more than the agent said it had room for
	for id := int64(1); id <= 5; id++ {
		if d := f.waitDone(id, 30*time.Second); d.ExitCode != 0 || d.Error != "" {
			t.Errorf("lease %d: %+v", id, d)
		}
	}
	if m := b.most.Load(); m != 2 {
		t.Errorf("%d steps at once, capacity 2", m)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.polls {
		if p.Free < 0 || p.Free > 2 || p.Capacity != 2 || p.Labels["os"] != "linux" || p.Version != "test" {
			t.Errorf("poll %+v", p)
		}
	}
}

func TestWrongTokenEndsRun(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	err := Run(t.Context(), Config{Server: f.srv.URL, Token: "wrong", Name: "a1", WorkDir: t.TempDir(),
		Backend: &process.Backend{}})
	if err == nil || !strings.Contains(err.Error(), "drover token create --machine agent") {
		t.Errorf("Run: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "../x", "a/b", `a\b`, "x/../y"} {
		if checkName(name) == nil {
			t.Errorf("%q accepted", name)
		}
	}
	for _, name := range []string{"shop-7", "run.7", "7"} {
		if err := checkName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}
