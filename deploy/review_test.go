package deploy

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/proxy"
	"github.com/drover-cd/drover/registry"
	"github.com/drover-cd/drover/release"
	"github.com/drover-cd/drover/runtime/process"
	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

var (
	websvcOnce sync.Once
	websvcPath string
	websvcErr  error
)

// websvc builds cmd/drover/testdata/websvc once for the tests that run real instances.
func websvc(t *testing.T) string {
	t.Helper()
	websvcOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deploy-test-")
		if err != nil {
			websvcErr = err
			return
		}
		websvcPath = filepath.Join(dir, "websvc")
		if out, err := exec.Command("go", "build", "-o", websvcPath, "../cmd/drover/testdata/websvc").CombinedOutput(); err != nil {
			websvcErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if websvcErr != nil {
		t.Fatal(websvcErr)
	}
	return websvcPath
}

// liveSetup is a Manager running real processes, and a maker of targets of service web
// (2 replicas) whose release answers with version.
func liveSetup(t *testing.T) (*Manager, func(version string) *target) {
	bin := websvc(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := New(ctx, Config{Runtime: &process.Runtime{}, Proxy: proxy.New(nil), Dir: t.TempDir(),
		HealthTimeout: 5 * time.Second, DrainTimeout: time.Second})
	t.Cleanup(func() { m.Shutdown(context.Background(), false) })
	mk := func(version string) *target {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "dist"), 0o755)
		os.WriteFile(filepath.Join(dir, "dist", "version"), []byte(version), 0o644)
		return &target{rel: &release.Release{Digest: digest.FromString(version), Tag: version},
			service: &pipeline.Service{Name: "web", Command: bin, Replicas: 2,
				Health: pipeline.Health{Path: "/healthz", Interval: 100 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2}},
			name: "web", dir: dir}
	}
	return m, mk
}

// withStore gives m a store (and an empty release catalog) and returns the store.
func withStore(t *testing.T, m *Manager) store.Store {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m.cfg.Store, m.cfg.Releases = st, &release.Catalog{Registry: reg}
	return st
}

func count(s *service) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.instances)
}

func pids(s *service) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, i := range s.instances {
		out = append(out, i.rt.Pid())
	}
	return out
}

func currentID(s *service) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return -1
	}
	return s.current.ID
}

func hasEvent(s *service, substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if strings.Contains(e.Message, substr) {
			n++
		}
	}
	return n
}

// waitCount waits until s runs n instances, failing the test after d.
func waitCount(t *testing.T, s *service, n int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); count(s) != n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d instances after %s, want %d; events: %v", count(s), d, n, s.events)
		}
	}
}

// Finding 3a: a rolling deploy bumps the generation once, so every instance it started
// is healed, not only the last.
func TestRollingDeployHealsEveryInstance(t *testing.T) {
	m, mk := liveSetup(t)
	s := m.service("staging", "web")
	v1 := mk("v1")
	if err := s.deploy(context.Background(), v1, &store.Deployment{ID: 1, Strategy: Rolling, Tag: "v1"}, func(l string) { t.Log(l) }); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	victim := s.instances[0]
	s.mu.Unlock()
	syscall.Kill(victim.rt.Pid(), syscall.SIGKILL)
	time.Sleep(4 * time.Second)
	t.Logf("instances after killing the first rolled instance: %d (want 2); events: %v", count(s), s.events)
	if count(s) != 2 {
		t.Errorf("not healed")
	}
}

// Finding 3b: a rolling redeploy of the same digest replaces the old instances (it does
// not tell them by digest) instead of piling new ones on top.
func TestRollingRedeployOfSameDigestKeepsReplicaCount(t *testing.T) {
	m, mk := liveSetup(t)
	s := m.service("staging", "web")
	v1 := mk("v1")
	if err := s.deploy(context.Background(), v1, &store.Deployment{ID: 1, Strategy: Rolling}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	before := pids(s)
	v1b := withReplicas(v1, 3)
	if err := s.deploy(context.Background(), v1b, &store.Deployment{ID: 2, Strategy: Rolling}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	t.Logf("instances after rolling scale 2 -> 3 of the same digest: %d (want 3)", count(s))
	if count(s) != 3 {
		t.Errorf("wrong count")
	}
	for _, p := range pids(s) {
		for _, b := range before {
			if p == b {
				t.Errorf("instance %d of the old deployment still serves", p)
			}
		}
	}
	// Back down to 1, still the same digest.
	if err := s.deploy(context.Background(), withReplicas(v1, 1), &store.Deployment{ID: 3, Strategy: Rolling}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if count(s) != 1 {
		t.Errorf("rolling scale 3 -> 1: %d instances", count(s))
	}
}

// Finding 3c: a rolling deploy failing halfway leaves the service on the deployment it
// ran (the store's live one), keeps the old instances still serving, and heals them.
func TestRollingDeployFailingHalfwayStaysOnOldDeployment(t *testing.T) {
	m, mk := liveSetup(t)
	s := m.service("staging", "web")
	ctx := context.Background()
	v1, v2 := mk("v1"), mk("v2")
	if err := s.deploy(ctx, v1, &store.Deployment{ID: 1, Strategy: Rolling, Tag: "v1"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	switched1 := s.switched
	s.mu.Unlock()
	// v2's second instance starts with a broken health check.
	log := func(l string) {
		if strings.HasPrefix(l, "instance 1 of 2 of v2") {
			os.WriteFile(filepath.Join(v2.dir, "dist", "unhealthy"), nil, 0o644)
		}
	}
	err := s.deploy(ctx, v2, &store.Deployment{ID: 2, Strategy: Rolling, Tag: "v2"}, log)
	if err == nil {
		t.Fatal("the rolling deploy succeeded")
	}
	s.mu.Lock()
	cur, switched, tgt := s.current, s.switched, s.target
	var old *instance
	for _, i := range s.instances {
		if strings.Contains(i.rt.Name(), "."+short(v1.rel.Digest.String())[:8]+".") {
			old = i
		}
	}
	s.mu.Unlock()
	if cur == nil || cur.ID != 1 || tgt != v1 || !switched.Equal(switched1) {
		t.Errorf("after the failed rolling deploy the service is on %+v (switched %v, was %v), want deployment 1", cur, switched, switched1)
	}
	if count(s) != 2 || old == nil {
		t.Fatalf("after the failed rolling deploy: %d instances (v1's still there: %v), want one of v1 and one of v2", count(s), old != nil)
	}
	if b := m.cfg.Proxy.Backends(s.key); len(b) != 2 {
		t.Errorf("proxy backends %v", b)
	}
	// The old instance still serving is healed.
	syscall.Kill(old.rt.Pid(), syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	waitCount(t, s, 2, 6*time.Second)
}

// Finding 5: forgetting a service (its environment taken down) during a deploy ends the
// deploy and leaves nothing running and no route.
func TestForgetDuringDeployLeavesNothingRunning(t *testing.T) {
	m, mk := liveSetup(t)
	s := m.service("dev", "web")
	v1 := mk("v1")
	done := make(chan error)
	go func() {
		done <- s.deploy(context.Background(), v1, &store.Deployment{ID: 1, Strategy: BlueGreen}, func(string) {})
	}()
	time.Sleep(30 * time.Millisecond)
	m.forget(context.Background(), s)
	err := <-done
	m.mu.Lock()
	_, known := m.services[s.key]
	m.mu.Unlock()
	t.Logf("deploy err %v; instances left running %d; service still known to the manager: %v; proxy backends: %v",
		err, count(s), known, m.cfg.Proxy.Backends(s.key))
	if count(s) != 0 {
		t.Errorf("orphaned instances")
	}
	if known || len(m.cfg.Proxy.Backends(s.key)) != 0 {
		t.Errorf("the forgotten service is still routed")
	}
	if err != nil && !errors.Is(err, errGone) { // nil when the deploy finished first
		t.Errorf("deploy error %v, want one saying the environment went", err)
	}
	// Nothing starts on it again.
	if err := s.deploy(context.Background(), v1, &store.Deployment{ID: 2, Strategy: Rolling}, func(string) {}); !errors.Is(err, errGone) {
		t.Errorf("a deploy to a forgotten service: %v", err)
	}
	if _, err := m.rollback(context.Background(), s, &store.Deployment{ID: 1}, &store.Deployment{ID: 0}, "x", "", nil); !errors.Is(err, errGone) {
		t.Errorf("a rollback of a forgotten service: %v", err)
	}
	s.mu.Lock()
	gen := s.gen
	s.pending[gen]++
	s.mu.Unlock()
	s.replace(v1, gen, 1)
	if count(s) != 0 {
		t.Errorf("a replacement started on a forgotten service")
	}
}

// Finding 5: forget ends a deploy still waiting for its instances' health at once,
// without waiting for the health timeout, and nothing is left running.
func TestForgetEndsADeployWaitingForHealth(t *testing.T) {
	m, mk := liveSetup(t)
	s := m.service("dev", "web")
	v1 := mk("v1")
	os.WriteFile(filepath.Join(v1.dir, "dist", "unhealthy"), nil, 0o644) // never healthy: only forget ends the deploy
	done := make(chan error)
	started := time.Now()
	go func() {
		done <- s.deploy(context.Background(), v1, &store.Deployment{ID: 1, Strategy: Rolling}, func(string) {})
	}()
	time.Sleep(300 * time.Millisecond)
	m.forget(context.Background(), s)
	err := <-done
	if took := time.Since(started); took > 3*time.Second {
		t.Errorf("the deploy ended %s after it started, forget did not end it (health timeout %s)", took, m.cfg.HealthTimeout)
	}
	if !errors.Is(err, errGone) {
		t.Errorf("deploy error %v, want one saying the environment went", err)
	}
	if count(s) != 0 || len(m.cfg.Proxy.Backends(s.key)) != 0 {
		t.Errorf("%d instances, backends %v left", count(s), m.cfg.Proxy.Backends(s.key))
	}
}

// Finding 4: an automatic rollback that fails does not stop healing: every instance
// that failed meanwhile is replaced, and the release is not rolled back again.
func TestFailedAutoRollbackKeepsHealing(t *testing.T) {
	m, mk := liveSetup(t)
	ctx := context.Background()
	st := withStore(t, m)
	m.cfg.RollbackWindow = time.Hour
	st.CreateEnvironment(ctx, &store.Environment{Name: "staging", Strategy: BlueGreen})
	// v0 ran before, but its release is gone from the registry: rolling back fails.
	p := &store.Deployment{Environment: "staging", Service: "web", Project: "web", Digest: digest.FromString("v0").String(), Tag: "v0", Strategy: BlueGreen, Status: StatusSuccess}
	if err := st.CreateDeployment(ctx, p); err != nil {
		t.Fatal(err)
	}
	v1 := mk("v1")
	a := &store.Deployment{Environment: "staging", Service: "web", Project: "web", Digest: v1.rel.Digest.String(), Tag: "v1", Strategy: BlueGreen, Status: StatusSuccess}
	if err := st.CreateDeployment(ctx, a); err != nil {
		t.Fatal(err)
	}
	failAfter := filepath.Join(v1.dir, "dist", "fail-after")
	os.WriteFile(failAfter, []byte("1500ms"), 0o644)
	s := m.service("staging", "web")
	if err := s.deploy(ctx, v1, a, func(string) {}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); hasEvent(s, "automatic rollback to v0 failed") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed rollback; events %v", s.events)
		}
	}
	// From now on v1's instances stay healthy: healing must bring back both.
	os.Remove(failAfter)
	stable := time.Time{}
	for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, e := range s.events {
				t.Log(e.Message)
			}
			t.Fatalf("not healed: %d instances", count(s))
		}
		if count(s) != 2 {
			stable = time.Time{}
			continue
		}
		if stable.IsZero() {
			stable = time.Now()
		}
		if time.Since(stable) > 3*time.Second {
			break
		}
	}
	if n := hasEvent(s, "rolling back to v0"); n != 1 {
		t.Errorf("%d automatic rollbacks of v1, want 1", n)
	}
}

// Finding 6: an ephemeral environment's deployment (ID 0, never recorded) is healed:
// ID 0 is not "the deployment being rolled back".
func TestEphemeralInstancesHeal(t *testing.T) {
	m, mk := liveSetup(t)
	s := m.service("eph-web-1", "web")
	v1 := mk("v1")
	if err := s.deploy(context.Background(), v1, &store.Deployment{Strategy: BlueGreen, Trigger: "ephemeral"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pids(s)[0], syscall.SIGKILL)
	time.Sleep(3 * time.Second)
	t.Logf("ephemeral after SIGKILL: %d instances (want 2)", count(s))
	if count(s) != 2 {
		t.Errorf("not healed")
	}
}

// Finding 8: a rollback whose turn comes after a newer deploy is abandoned instead of
// undoing it.
func TestRollbackNeverUndoesANewerDeploy(t *testing.T) {
	m, mk := liveSetup(t)
	ctx := context.Background()
	s := m.service("staging", "web")
	v1, v2 := mk("v1"), mk("v2")
	d1 := &store.Deployment{ID: 1, Service: "web", Environment: "staging", Strategy: BlueGreen, Tag: "v1"}
	if err := s.deploy(ctx, withReplicas(v1, 1), d1, func(string) {}); err != nil {
		t.Fatal(err)
	}
	d2 := &store.Deployment{ID: 2, Service: "web", Environment: "staging", Strategy: BlueGreen, Tag: "v2"}
	if err := s.deploy(ctx, withReplicas(v2, 1), d2, func(string) {}); err != nil {
		t.Fatal(err)
	}
	// A rollback of d1 (to d0) asked for while d1 was live comes after d2.
	d0 := &store.Deployment{ID: 0, Service: "web", Environment: "staging", Tag: "v0"}
	_, err := m.rollback(ctx, s, d1, d0, "automatic rollback: test", "", nil)
	if !errors.Is(err, errSuperseded) || !errors.Is(err, ErrBadRequest) {
		t.Errorf("rollback of a replaced deployment: %v", err)
	}
	if id := currentID(s); id != 2 {
		t.Errorf("the service runs deployment %d, want 2", id)
	}
}

// Finding 7: Reconcile leaves alone a service a deploy reached since the server
// started, and a restored release keeps its switch time (no new rollback window).
func TestRestoreKeepsNewerDeployAndOldSwitch(t *testing.T) {
	m, mk := liveSetup(t)
	ctx := context.Background()
	v1, v2 := mk("v1"), mk("v2")
	s := m.service("staging", "web")
	if err := s.deploy(ctx, withReplicas(v2, 1), &store.Deployment{ID: 2, Strategy: BlueGreen, Tag: "v2"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	restored, err := s.restore(ctx, withReplicas(v1, 1), &store.Deployment{ID: 1, Strategy: BlueGreen, Tag: "v1", Finished: time.Now()})
	if err != nil || restored || currentID(s) != 2 {
		t.Errorf("restore over a newer deploy: restored %v, err %v, current %d", restored, err, currentID(s))
	}

	finished := time.Now().Add(-time.Hour)
	for _, strategy := range []string{BlueGreen, Rolling} {
		s := m.service("prod-"+strategy, "web")
		restored, err := s.restore(ctx, withReplicas(v1, 1), &store.Deployment{ID: 1, Strategy: strategy, Tag: "v1", Finished: finished})
		if err != nil || !restored {
			t.Fatalf("%s restore: %v %v", strategy, restored, err)
		}
		s.mu.Lock()
		switched := s.switched
		s.mu.Unlock()
		if !switched.Equal(finished) || time.Since(switched) < m.cfg.RollbackWindow {
			t.Errorf("%s: a restored release switched at %v, want %v (outside the rollback window)", strategy, switched, finished)
		}
	}
}

// Finding 2: two ephemeral environments of one run get names of their own, valid host
// labels, and a name comes free again when its lease ends.
func TestEphemeralNamesOfOneRunDiffer(t *testing.T) {
	ctx := context.Background()
	m := New(ctx, Config{Proxy: proxy.New(nil)})
	st := withStore(t, m)
	a, freeA, err := m.reserveEphemeral(ctx, EphemeralName("shop", 12), "")
	if err != nil {
		t.Fatal(err)
	}
	b, freeB, err := m.reserveEphemeral(ctx, EphemeralName("shop", 12), "")
	if err != nil {
		t.Fatal(err)
	}
	if a != "eph-shop-12" || b != "eph-shop-12-2" {
		t.Errorf("names %q, %q", a, b)
	}
	// Names the store or a running service has are skipped.
	st.CreateEnvironment(ctx, &store.Environment{Name: "eph-shop-12-3", Strategy: BlueGreen})
	m.service("eph-shop-12-4", "web")
	c, freeC, err := m.reserveEphemeral(ctx, EphemeralName("shop", 12), "")
	if err != nil || c != "eph-shop-12-5" {
		t.Errorf("third name %q %v, want eph-shop-12-5", c, err)
	}
	freeA()
	freeA() // harmless
	if again, _, _ := m.reserveEphemeral(ctx, EphemeralName("shop", 12), ""); again != "eph-shop-12" {
		t.Errorf("a freed name was not reused: %q", again)
	}
	freeB()
	freeC()

	long := EphemeralName("a-very-long-project-name-that-goes-on-and-on-and-on-forever-x", 12)
	m.reserveEphemeral(ctx, long, "")
	n2, _, _ := m.reserveEphemeral(ctx, long, "")
	if n2 == long || !validEnvName(n2) {
		t.Errorf("second name of a long project: %q (valid %v)", n2, validEnvName(n2))
	}
}

// Finding 12: Down takes down developer environments only.
func TestDownTakesDownOnlyDeveloperEnvironments(t *testing.T) {
	ctx := context.Background()
	m := New(ctx, Config{Proxy: proxy.New(nil)})
	st := withStore(t, m)
	mkEnv := func(name string, idle time.Duration, triggers ...string) {
		t.Helper()
		if err := st.CreateEnvironment(ctx, &store.Environment{Name: name, Strategy: BlueGreen, IdleTimeout: idle}); err != nil {
			t.Fatal(err)
		}
		for _, tr := range triggers {
			d := &store.Deployment{Environment: name, Service: "web", Project: "web", Digest: digest.FromString(tr).String(),
				Tag: "r1", Strategy: BlueGreen, Status: StatusSuccess, Trigger: tr}
			if err := st.CreateDeployment(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	mkEnv("staging", 0, "alice", "run web #3")
	mkEnv("alice", 0, upTrigger+"alice", "alice") // made by env up, then deployed to
	mkEnv("empty", 0)
	mkEnv("idle", time.Hour, "bob")
	if err := m.Down(ctx, "staging", "mallory", "test"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Down staging: %v", err)
	}
	if _, err := st.Environment(ctx, "staging"); err != nil {
		t.Errorf("staging went: %v", err)
	}
	for _, env := range []string{"alice", "empty", "idle"} {
		if err := m.Down(ctx, env, "alice", "test"); err != nil {
			t.Errorf("Down %s: %v", env, err)
		}
		if _, err := st.Environment(ctx, env); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s is still there: %v", env, err)
		}
	}
}

// Finding 17: taking an environment down closes the route listeners of services
// required there that never ran.
func TestTearDownClosesRoutesOfServicesThatNeverRan(t *testing.T) {
	ctx := context.Background()
	m := New(ctx, Config{Proxy: proxy.New(nil)})
	t.Cleanup(func() { m.Shutdown(ctx, false) })
	u, err := m.URL("eph-shop-1", "db")
	if err != nil {
		t.Fatal(err)
	}
	m.URL("eph-shop-1", "svc.v2")
	m.URL("eph-shop-10", "db")
	m.URL("shop-1", "db")
	if resp, err := http.Get(u); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	m.stopEnv(ctx, "eph-shop-1")
	m.mu.Lock()
	var keys []string
	for k := range m.routes {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	if len(keys) != 2 {
		t.Errorf("routes left: %v, want db.eph-shop-10.localhost and db.shop-1.localhost", keys)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(u); err == nil {
		resp.Body.Close()
		t.Errorf("the route listener of a stopped environment still answers")
	}
}

// Finding 18: an instance run through sh whose child was SIGKILLed or SIGTERMed (exit
// status 137, 143) was signalled, not failed by its release.
func TestSignalledCountsShellKills(t *testing.T) {
	for script, want := range map[string]bool{"exit 137": true, "exit 143": true, "exit 1": false, "exit 0": false,
		"kill -9 $$": true, "sleep 5 & kill -9 $!; wait $!": true} {
		err := exec.Command("sh", "-c", script).Run()
		if got := signalled(err); got != want {
			t.Errorf("%q (%v): signalled %v, want %v", script, err, got, want)
		}
	}
	if signalled(errors.New("x")) {
		t.Error("a plain error counts as signalled")
	}
}

// Finding 16: the first restart of a slot is immediate, later ones back off, and an
// instance that stayed up a while starts its slot's count afresh.
func TestRestartBackoff(t *testing.T) {
	for restarts, want := range map[int]time.Duration{0: 0, 1: 0, 2: firstBackoff, 3: 2 * firstBackoff, 4: 4 * firstBackoff,
		20: maxBackoff, 1000: maxBackoff} {
		if got := backoff(restarts); got != want {
			t.Errorf("backoff(%d) = %s, want %s", restarts, got, want)
		}
	}
	now := time.Now()
	if got := restartsAfter(&instance{restarts: 5, started: now.Add(-time.Second)}, now); got != 5 {
		t.Errorf("a crash looping slot: %d", got)
	}
	if got := restartsAfter(&instance{restarts: 5, started: now.Add(-2 * stableAfter)}, now); got != 0 {
		t.Errorf("an instance up for long: %d", got)
	}
}

// An ephemeral environment runs where the environment it copies runs: its runtime is
// its base's, and after it is given back the name has none of its own.
func TestEphemeralEnvironmentRunsWhereItsBaseRuns(t *testing.T) {
	ctx := context.Background()
	m := New(ctx, Config{Proxy: proxy.New(nil), DefaultRuntime: RuntimeProcess})
	st := withStore(t, m)
	if err := st.CreateEnvironment(ctx, &store.Environment{Name: "staging", Strategy: BlueGreen, Runtime: RuntimeDocker}); err != nil {
		t.Fatal(err)
	}
	name, free, err := m.reserveEphemeral(ctx, EphemeralName("shop", 3), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.runtimeOf(name); got != RuntimeDocker {
		t.Errorf("%s runs on %q, want docker like staging", name, got)
	}
	free()
	if got := m.runtimeOf(name); got != RuntimeProcess {
		t.Errorf("after the lease, %s runs on %q, want the default", name, got)
	}
}

// A deploy waiting for an instance that is not healthy yet says so as it goes: how long,
// and what the last probe said.
func TestWaitingForHealthShowsProgress(t *testing.T) {
	m, mk := liveSetup(t)
	m.cfg.HealthTimeout, m.cfg.ProgressInterval = 1500*time.Millisecond, 300*time.Millisecond
	s := m.service("dev", "web")
	v1 := mk("v1")
	os.WriteFile(filepath.Join(v1.dir, "dist", "unhealthy"), nil, 0o644)
	var mu sync.Mutex
	var lines []string
	err := s.deploy(context.Background(), v1, &store.Deployment{ID: 1, Strategy: BlueGreen}, func(l string) {
		mu.Lock()
		lines = append(lines, l)
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	progress := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "waiting for web in dev to become healthy: ") && strings.Contains(l, "last probe: ") {
			progress++
		}
	}
	if err == nil || progress < 2 {
		t.Errorf("deploy error %v; %d progress lines in %q", err, progress, lines)
	}
}
