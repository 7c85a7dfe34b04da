package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

// harness is a Dispatcher over a real SQLite store, with credentials counted.
type harness struct {
	t      *testing.T
	d      *Dispatcher
	st     store.Store
	run    *store.Run
	mu     sync.Mutex
	seeded [][]ocispec.Descriptor
}

func newHarness(t *testing.T, period time.Duration, local engine.Backend) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &store.Project{Name: "shop"}
	if err := st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	run := &store.Run{Project: "shop", Status: "running", Branch: "main", Commit: "abc123"}
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, run: run}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	h.d = h.dispatcher(ctx, period, local)
	return h
}

func (h *harness) dispatcher(ctx context.Context, period time.Duration, local engine.Backend) *Dispatcher {
	d := New(Config{Store: h.st, Local: local, Period: period, GitURL: func(p string) string { return "/git/" + p + ".git" }})
	if err := d.Start(ctx); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) backend() engine.Backend {
	return h.d.Backend(Run{ID: h.run.ID, Project: "shop", Commit: "abc123", Repository: "shop",
		Seed: func(_ context.Context, layers []ocispec.Descriptor) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.seeded = append(h.seeded, layers)
			return nil
		}})
}

// exec is one Exec in the background.
type exec struct {
	spec *engine.Spec
	out  *lockedBuffer
	code int
	err  error
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (h *harness) exec(ctx context.Context, b engine.Backend, name string, labels map[string]string) *exec {
	e := &exec{out: &lockedBuffer{}, done: make(chan struct{}),
		spec: &engine.Spec{Name: name, Step: &pipeline.Step{Name: name, Run: "true", Agent: labels}, Script: "true", Attempt: 1, Run: "shop-1-x"}}
	go func() {
		defer close(e.done)
		e.code, e.err = b.Exec(ctx, e.spec, e.out)
	}()
	return e
}

func (e *exec) wait(t *testing.T) {
	t.Helper()
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Exec of %s did not return", e.spec.Name)
	}
}

func poll(t *testing.T, d *Dispatcher, name string, labels map[string]string, free int, running ...int64) *agentproto.PollReply {
	t.Helper()
	r, err := d.Poll(context.Background(), agentproto.Poll{Name: name, Labels: labels, Capacity: 2, Free: free, Running: running,
		Wait: 200 * time.Millisecond}, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pollFor polls until the agent gets a lease.
func pollFor(t *testing.T, d *Dispatcher, name string, labels map[string]string, running ...int64) agentproto.Lease {
	t.Helper()
	for range 50 {
		if r := poll(t, d, name, labels, 1, running...); len(r.Leases) > 0 {
			return r.Leases[0]
		}
	}
	t.Fatalf("agent %s got no lease", name)
	return agentproto.Lease{}
}

func TestStepsGoByLabelsAndStayInTheRunsWorkspace(t *testing.T) {
	h := newHarness(t, time.Minute, nil)
	ctx := context.Background()
	linux, mac := map[string]string{"os": "linux"}, map[string]string{"os": "macos"}
	poll(t, h.d, "l1", linux, 0)
	poll(t, h.d, "l2", linux, 0)
	poll(t, h.d, "m1", mac, 0)
	b := h.backend()

	first := h.exec(ctx, b, "build", linux)
	l := pollFor(t, h.d, "l2", linux)
	if l.Name != "build" || !l.Fresh || l.Workspace != fmt.Sprintf("run-%d", h.run.ID) || l.Checkout.URL != "/git/shop.git" || l.Checkout.Commit != "abc123" {
		t.Fatalf("first lease: %+v", l)
	}
	// The run's next linux step must go to l2, its home, not to l1.
	second := h.exec(ctx, b, "test", linux)
	if r := poll(t, h.d, "l1", linux, 1); len(r.Leases) != 0 {
		t.Fatalf("l1 took a step of a run whose workspace is on l2: %+v", r.Leases)
	}
	l2 := pollFor(t, h.d, "l2", linux, l.ID)
	if l2.Fresh || l2.Workspace != l.Workspace {
		t.Errorf("second lease on the home agent: fresh=%v workspace=%s", l2.Fresh, l2.Workspace)
	}
	// A step that needs another OS runs on m1, fresh, with its needs' artifacts.
	layer := ocispec.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Size: 3}
	third := &exec{out: &lockedBuffer{}, done: make(chan struct{}),
		spec: &engine.Spec{Name: "mac", Step: &pipeline.Step{Name: "mac", Agent: mac}, Attempt: 1, Run: "shop-1-x", Inputs: []ocispec.Descriptor{layer}}}
	go func() { defer close(third.done); third.code, third.err = b.Exec(ctx, third.spec, third.out) }()
	l3 := pollFor(t, h.d, "m1", mac)
	if !l3.Fresh || l3.Workspace == l.Workspace || len(l3.Inputs) != 1 || l3.Inputs[0].Digest != layer.Digest {
		t.Errorf("a step on another agent: %+v", l3)
	}

	// Output and results come back; the credential opens nothing after.
	if c, ok := h.d.Credential(l.Token); !ok || c.Lease != l.ID || c.Project != "shop" || len(c.Pushes) != 0 || !strings.HasPrefix(l.Token, TokenPrefix) {
		t.Errorf("the credential of lease %d: %+v %v", l.ID, c, ok)
	}
	if _, ok := h.d.Credential(TokenPrefix + "guess"); ok {
		t.Error("a made-up lease token opens doors")
	}
	if err := h.d.Log(l.ID, l.ID, 0, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Log(l.ID, l.ID, 0, []byte("hello\nworld\n")); err != nil { // sent again, plus more
		t.Fatal(err)
	}
	if err := h.d.Done(ctx, l.ID, l.ID, &agentproto.Done{ExitCode: 3, Artifacts: []ocispec.Descriptor{layer}}); err != nil {
		t.Fatal(err)
	}
	first.wait(t)
	if first.code != 3 || first.err != nil || first.out.String() != "hello\nworld\n" {
		t.Errorf("first: code %d err %v out %q", first.code, first.err, first.out)
	}
	if first.spec.Far == nil || first.spec.Far.Agent != "l2" || len(h.seeded) != 1 {
		t.Errorf("first's far result %+v, seeded %v", first.spec.Far, h.seeded)
	}
	if _, ok := h.d.Credential(l.Token); ok {
		t.Error("the first lease's credential still opens doors")
	}
	// A second result for the same lease, or one with another lease's credential, is refused.
	if err := h.d.Done(ctx, l.ID, l.ID, &agentproto.Done{}); !errors.Is(err, ErrGone) {
		t.Errorf("a second result: %v", err)
	}
	if err := h.d.Done(ctx, l2.ID, l3.ID, &agentproto.Done{}); !errors.Is(err, ErrGone) {
		t.Errorf("a result with another lease's credential: %v", err)
	}
	for _, l := range []agentproto.Lease{l2, l3} {
		if err := h.d.Done(ctx, l.ID, l.ID, &agentproto.Done{}); err != nil {
			t.Fatal(err)
		}
	}
	second.wait(t)
	third.wait(t)
	leases, _ := h.st.Leases(ctx, store.LeaseFilter{RunID: h.run.ID})
	if len(leases) != 3 || leases[0].Status != store.LeaseDone || !leases[0].Home || leases[2].Home || leases[2].Agent != "m1" {
		t.Errorf("leases in the store: %+v %+v %+v", leases[0], leases[1], leases[2])
	}
}

func TestSilentAgentLosesItsStepAndALateResultIsRefused(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, nil)
	ctx := context.Background()
	b := h.backend()
	e := h.exec(ctx, b, "build", nil)
	l := pollFor(t, h.d, "a1", nil)
	_ = h.d.Log(l.ID, l.ID, 0, []byte("partial\n"))
	// a1 goes silent: after the period the attempt is lost, and the engine hears it.
	e.wait(t)
	var lost *engine.LostError
	if !errors.As(e.err, &lost) || lost.Agent != "a1" || !strings.Contains(lost.Error(), "stopped answering") {
		t.Fatalf("Exec: %v", e.err)
	}
	if _, ok := h.d.Credential(l.Token); ok {
		t.Error("the lost lease's credential is still valid")
	}
	if err := h.d.Done(ctx, l.ID, l.ID, &agentproto.Done{}); !errors.Is(err, ErrGone) {
		t.Errorf("a late result: %v", err)
	}
	// Back again, a1 is told to stop what it still runs.
	if r := poll(t, h.d, "a1", nil, 1, l.ID); len(r.Stop) != 1 || r.Stop[0] != l.ID {
		t.Errorf("a1 was not told to drop the lost lease: %+v", r)
	}
	// The next attempt runs on another agent: the lost home took its workspace along.
	e2 := h.exec(ctx, b, "build", nil)
	l2 := pollFor(t, h.d, "a2", nil)
	if !l2.Fresh {
		t.Errorf("the attempt after a lost one: %+v", l2)
	}
	_ = h.d.Done(ctx, l2.ID, l2.ID, &agentproto.Done{})
	e2.wait(t)
}

func TestAgentThatRestartedWithoutItsLeaseLosesItAtOnce(t *testing.T) {
	h := newHarness(t, time.Minute, nil)
	e := h.exec(context.Background(), h.backend(), "build", nil)
	pollFor(t, h.d, "a1", nil)
	poll(t, h.d, "a1", nil, 1) // it does not list the lease: it restarted
	e.wait(t)
	var lost *engine.LostError
	if !errors.As(e.err, &lost) || !strings.Contains(lost.Reason, "restarted") {
		t.Errorf("Exec: %v", e.err)
	}
}

func TestCancelStopsTheStepOnItsAgent(t *testing.T) {
	h := newHarness(t, time.Minute, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	e := h.exec(ctx, h.backend(), "build", nil)
	l := pollFor(t, h.d, "a1", nil)
	cancel(errors.New("cancelled by ann"))
	var r *agentproto.PollReply
	for range 20 {
		if r = poll(t, h.d, "a1", nil, 1, l.ID); len(r.Stop) > 0 {
			break
		}
	}
	if len(r.Stop) != 1 || r.Stop[0] != l.ID {
		t.Fatalf("the agent was not told to stop: %+v", r)
	}
	if err := h.d.Done(context.Background(), l.ID, l.ID, &agentproto.Done{ExitCode: 143, Error: "stopped"}); err != nil {
		t.Errorf("the stopped step's result: %v", err)
	}
	e.wait(t)
	if e.err == nil || e.err.Error() != "cancelled by ann" {
		t.Errorf("Exec: %v", e.err)
	}
	// A queued step that is cancelled just leaves the queue.
	ctx2, cancel2 := context.WithCancel(context.Background())
	e2 := h.exec(ctx2, h.backend(), "later", map[string]string{"os": "plan9"})
	cancel2()
	e2.wait(t)
	if !errors.Is(e2.err, context.Canceled) || len(h.d.queue) != 0 {
		t.Errorf("a cancelled queued step: %v, queue %d", e2.err, len(h.d.queue))
	}
}

func TestAWaitingStepSaysWhy(t *testing.T) {
	h := newHarness(t, time.Minute, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := h.exec(ctx, h.backend(), "build", nil)
	time.Sleep(1500 * time.Millisecond)
	if got := e.out.String(); !strings.Contains(got, "waiting for an agent: none is connected (start one with drover agent run)") {
		t.Errorf("with no agent: %q", got)
	}
	poll(t, h.d, "a1", map[string]string{"os": "linux"}, 0)
	e2 := h.exec(ctx, h.backend(), "mac", map[string]string{"os": "macos"})
	time.Sleep(2500 * time.Millisecond)
	want := "drover: waiting for an agent with the labels os=macos: no connected agent has them (a1 (os=linux))"
	if got := e2.out.String(); !strings.Contains(got, want) {
		t.Errorf("with a mismatched label: %q, want %q", got, want)
	}
	// A drained agent gets nothing, and says so in its reply.
	if err := h.d.Drain(ctx, "a1", true); err != nil {
		t.Fatal(err)
	}
	e3 := h.exec(ctx, h.backend(), "linux", map[string]string{"os": "linux"})
	if r := poll(t, h.d, "a1", map[string]string{"os": "linux"}, 2); len(r.Leases) != 0 || !r.Drained {
		t.Errorf("a drained agent's poll: %+v", r)
	}
	if err := h.d.Drain(ctx, "nobody", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("draining an unknown agent: %v", err)
	}
	cancel()
	e.wait(t)
	e2.wait(t)
	e3.wait(t)
}

func TestSecretsGoOnlyOverTLSOrLoopback(t *testing.T) {
	h := newHarness(t, time.Minute, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &exec{out: &lockedBuffer{}, done: make(chan struct{}),
		spec: &engine.Spec{Name: "deploy", Step: &pipeline.Step{Name: "deploy", Secrets: []string{"TOKEN"}}, Attempt: 1, Run: "shop-1-x",
			Env: []string{"TOKEN=hunter2"}, Hidden: []string{"hunter2"}}}
	go func() { defer close(e.done); e.code, e.err = h.backend().Exec(ctx, e.spec, e.out) }()
	time.Sleep(50 * time.Millisecond)
	plain, err := h.d.Poll(ctx, agentproto.Poll{Name: "p1", Capacity: 1, Free: 1, Wait: 1500 * time.Millisecond}, false)
	if err != nil || len(plain.Leases) != 0 {
		t.Fatalf("an agent over plain HTTP got a step with secrets: %+v %v", plain, err)
	}
	if got := e.out.String(); !strings.Contains(got, "the step has secrets, and p1 connect over plain HTTP") {
		t.Errorf("why it waits: %q", got)
	}
	l := pollFor(t, h.d, "s1", nil)
	if l.Name != "deploy" || len(l.Hidden) != 1 || l.Hidden[0] != "hunter2" {
		t.Errorf("lease over TLS: %+v", l)
	}
	_ = h.d.Done(ctx, l.ID, l.ID, &agentproto.Done{})
	e.wait(t)
	// A later step without secrets (in the run's workspace on s1) learns none of the run's.
	e2 := &exec{out: &lockedBuffer{}, done: make(chan struct{}),
		spec: &engine.Spec{Name: "test", Step: &pipeline.Step{Name: "test"}, Attempt: 1, Run: "shop-1-x", Hidden: []string{"hunter2"}}}
	go func() { defer close(e2.done); e2.code, e2.err = h.backend().Exec(ctx, e2.spec, e2.out) }()
	var got *agentproto.PollReply
	for range 20 {
		if got, _ = h.d.Poll(ctx, agentproto.Poll{Name: "s1", Capacity: 1, Free: 1, Wait: 100 * time.Millisecond}, true); len(got.Leases) > 0 {
			break
		}
	}
	if len(got.Leases) != 1 || len(got.Leases[0].Hidden) != 0 {
		t.Fatalf("a step without secrets: %+v", got)
	}
	_ = h.d.Done(ctx, got.Leases[0].ID, got.Leases[0].ID, &agentproto.Done{})
	e2.wait(t)
}

func TestLeasesOutliveARestart(t *testing.T) {
	h := newHarness(t, time.Minute, nil)
	ctx := context.Background()
	server, stop := context.WithCancel(ctx)
	h.d = h.dispatcher(server, time.Minute, nil)
	e := h.exec(server, h.backend(), "build", nil)
	l := pollFor(t, h.d, "a1", nil)
	_ = h.d.Log(l.ID, l.ID, 0, []byte("before\n"))
	stop() // the server stops: its engine goes, the step stays with its agent
	e.wait(t)
	if got, _ := h.st.Lease(ctx, l.ID); got.Status != store.LeaseActive {
		t.Fatalf("a server's stop ended the lease: %+v", got)
	}

	// A new server loads the lease, its credential valid. Until the run is taken up,
	// reports wait.
	h.d = h.dispatcher(ctx, time.Minute, nil)
	if !h.d.Outlived(h.run.ID) {
		t.Fatal("the restarted dispatcher does not know the lease")
	}
	if c, ok := h.d.Credential(l.Token); !ok || c.Lease != l.ID || c.Project != "shop" {
		t.Errorf("the lease's credential after the restart: %+v %v", c, ok)
	}
	if err := h.d.Log(l.ID, l.ID, 7, []byte("after\n")); !errors.Is(err, ErrNotYet) {
		t.Errorf("a report before the run is taken up: %v", err)
	}
	if r := poll(t, h.d, "a1", nil, 1, l.ID); len(r.Stop) != 0 {
		t.Errorf("the agent was told to drop a lease that outlived the restart: %+v", r)
	}
	e2 := h.exec(ctx, h.backend(), "build", nil)
	time.Sleep(50 * time.Millisecond)
	if err := h.d.Log(l.ID, l.ID, 7, []byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Done(ctx, l.ID, l.ID, &agentproto.Done{ExitCode: 0}); err != nil {
		t.Fatal(err)
	}
	e2.wait(t)
	leases, _ := h.st.Leases(ctx, store.LeaseFilter{RunID: h.run.ID})
	if e2.err != nil || e2.out.String() != "after\n" || len(leases) != 1 {
		t.Errorf("taken up: %v %q, %d leases", e2.err, e2.out, len(leases))
	}
}

func TestRemoteOnceAnAgentIsSeen(t *testing.T) {
	h := newHarness(t, time.Minute, engine.Backend(nil))
	if !h.d.Remote() {
		t.Error("without a local backend, steps must go to agents")
	}
	h2 := newHarness(t, time.Minute, localBackend{})
	if h2.d.Remote() {
		t.Error("with no agent registered, steps run on the server")
	}
	poll(t, h2.d, "a1", nil, 0)
	if !h2.d.Remote() {
		t.Error("with an agent registered, steps go to agents")
	}
}

type localBackend struct{}

func (localBackend) Exec(context.Context, *engine.Spec, io.Writer) (int, error) { return 0, nil }
