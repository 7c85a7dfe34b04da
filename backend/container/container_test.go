package container

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/registry"
)

// harness runs pipelines through the engine with this backend on the real engine.
type harness struct {
	t      *testing.T
	e      *docker.Engine
	ws     string
	reg    *registry.Registry
	owner  string
	closed []string
}

func newHarness(t *testing.T, withRegistry bool) *harness {
	h := &harness{t: t, ws: t.TempDir()}
	var reg docker.Registry
	if withRegistry {
		r, err := registry.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: r}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		h.reg, reg = r, docker.Registry{Host: l.Addr().String()}
	}
	h.e = dockertest.Engine(t, reg)
	if withRegistry {
		dockertest.RemoveImagesOf(t, h.e, reg.Host)
	}
	dockertest.BuildBusybox(t, h.e)
	return h
}

// run runs the drover.yml through the engine and returns the result and the log.
func (h *harness) run(ctx context.Context, yml string, job engine.Job) (*engine.RunResult, string) {
	h.t.Helper()
	p, err := pipeline.Parse("drover.yml", []byte(yml))
	if err != nil {
		h.t.Fatal(err)
	}
	g, err := pipeline.Compile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	var mu sync.Mutex
	var log strings.Builder
	job.Graph, job.Workspace = g, h.ws
	if job.Vars.Run == 0 {
		job.Vars.Run = 7
	}
	job.Vars.Workspace = h.ws
	job.BaseEnv = []string{"PATH=" + os.Getenv("PATH")}
	job.Sink = engine.SinkFunc(func(ev engine.Event) {
		if ev.Type == engine.StepLog {
			mu.Lock()
			log.WriteString(ev.Step + ": " + ev.Line + "\n")
			mu.Unlock()
		}
	})
	b := &Backend{Engine: func(context.Context) (*docker.Engine, error) { return h.e, nil }, Local: &process.Backend{}, Grace: time.Second}
	res, err := (&engine.Engine{Backend: b}).Run(ctx, job)
	if err != nil {
		h.t.Fatal(err)
	}
	return res, log.String()
}

// containers lists the test's containers still on the engine.
func (h *harness) leftovers() int {
	h.t.Helper()
	n, err := h.e.RemoveLeftovers(context.Background(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestStepRunsInAContainerWithTheWorkspace(t *testing.T) {
	h := newHarness(t, false)
	os.WriteFile(filepath.Join(h.ws, "input.txt"), []byte("from the host\n"), 0o644)
	res, log := h.run(context.Background(), `
steps:
  - name: inside
    image: `+dockertest.Busybox+`
    env: {GREETING: hello}
    run: |
      cat input.txt
      echo "$GREETING run $DROVER_RUN in $(pwd)"
      test ! -e /usr/bin/go && echo "no host tools here"
      echo written > output.txt
  - name: on the host
    needs: [inside]
    run: cat output.txt
  - name: exit code
    image: `+dockertest.Busybox+`
    allow_failure: true
    run: exit 3
`, engine.Job{})
	for _, want := range []string{"inside: from the host", "inside: hello run 7 in " + h.ws, "inside: no host tools here", "on the host: written"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if res.Steps[2].ExitCode != 3 || res.Steps[2].Status != engine.Failure {
		t.Errorf("exit code step: %+v, want failure with exit code 3", res.Steps[2])
	}
	if st, err := os.Stat(filepath.Join(h.ws, "output.txt")); err != nil {
		t.Fatal(err)
	} else if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Getuid() {
		t.Errorf("a file the container wrote belongs to uid %d, not to drover's %d", uid, os.Getuid())
	}
	if n := h.leftovers(); n != 0 {
		t.Errorf("%d containers left after the run; every step container must be removed", n)
	}
}

func TestTimeoutAndCancelRemoveTheContainer(t *testing.T) {
	h := newHarness(t, false)
	start := time.Now()
	res, _ := h.run(context.Background(), `
steps:
  - name: slow
    image: `+dockertest.Busybox+`
    timeout: 2s
    run: sleep 60
`, engine.Job{})
	if res.Steps[0].Status != engine.Failure || !strings.Contains(res.Steps[0].Reason, "timed out") {
		t.Fatalf("step: %+v, want a timeout failure", res.Steps[0])
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the timed-out step took %s to stop", d)
	}
	if n := h.leftovers(); n != 0 {
		t.Errorf("%d containers left after a timeout", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2*time.Second, cancel)
	res, _ = h.run(ctx, `
steps:
  - name: slow
    image: `+dockertest.Busybox+`
    run: sleep 60
`, engine.Job{})
	if res.Status != engine.Cancelled {
		t.Fatalf("run %s, want cancelled", res.Status)
	}
	if n := h.leftovers(); n != 0 {
		t.Errorf("%d containers left after a cancel", n)
	}
}

func TestSidecarIsReachableByName(t *testing.T) {
	h := newHarness(t, false)
	id := "sidecar-" + rand.Text()[:8]
	res, log := h.run(context.Background(), `
steps:
  - name: with db
    image: `+dockertest.Busybox+`
    services:
      - name: db
        image: `+dockertest.Busybox+`
        env: {ANSWER: "42"}
        command: [sh, -c, "mkdir -p /srv && echo answer=$ANSWER > /srv/ping && echo db is up && httpd -f -p 8080 -h /srv"]
    run: |
      for i in $(seq 50); do wget -qO- http://db:8080/ping && exit 0; sleep 0.1; done
      exit 1
`, engine.Job{ID: id})
	if res.Status != engine.Success || !strings.Contains(log, "answer=42") || strings.Contains(log, "db is up") {
		t.Fatalf("run %s, log (the sidecar's own lines only when the step fails):\n%s", res.Status, log)
	}
	if n := h.leftovers(); n != 0 {
		t.Errorf("%d containers left: the sidecar must go with its step", n)
	}
	if ok, err := h.e.HasNetwork(context.Background(), "drover-"+id); err != nil || ok {
		t.Errorf("the run's network drover-%s is still there (err %v): it must go with the run", id, err)
	}
}

// A failed step's log ends with what its sidecars printed last, each line marked with
// the sidecar's name.
func TestFailedStepShowsItsSidecarsLastLines(t *testing.T) {
	h := newHarness(t, false)
	// The sidecar serves once it has printed, and the step waits for that; then it
	// fails, by its exit code or by its timeout. The engine copies stdout and stderr
	// each on its own, so the stderr line waits until the stdout lines are logged.
	for _, end := range []string{"exit 3", "sleep 60"} {
		res, log := h.run(context.Background(), `
steps:
  - name: with db
    image: `+dockertest.Busybox+`
    timeout: 5s
    services:
      - name: db
        image: `+dockertest.Busybox+`
        command: [sh, -c, "seq 100 | sed 's/^/line /'; sleep 0.5; echo FATAL no disk >&2; mkdir /srv; httpd -f -p 8080 -h /srv"]
    run: |
      until wget -q -O /dev/null http://db:8080/ 2>/dev/null || wget -q -O - http://db:8080/ 2>&1 | grep -q 404; do sleep 0.1; done
      `+end+`
`, engine.Job{})
		if res.Status != engine.Failure {
			t.Fatalf("%s: run %s, log:\n%s", end, res.Status, log)
		}
		for _, want := range []string{"service db, its last 50 lines:", "db| line 100\n", "db| FATAL no disk\n"} {
			if !strings.Contains(log, want) {
				t.Errorf("%s: the log lacks %q:\n%s", end, want, log)
			}
		}
		if strings.Contains(log, "db| line 50\n") {
			t.Errorf("%s: more than the last 50 lines:\n%s", end, log)
		}
		if n := h.leftovers(); n != 0 {
			t.Errorf("%s: %d containers left", end, n)
		}
	}
}

func TestBuildPushesTheImageAndLaterStepsRunInIt(t *testing.T) {
	h := newHarness(t, true)
	os.MkdirAll(filepath.Join(h.ws, "app"), 0o755)
	os.WriteFile(filepath.Join(h.ws, "app", "Dockerfile"), []byte("FROM "+dockertest.Busybox+"\nCOPY message /message\n"), 0o644)
	os.WriteFile(filepath.Join(h.ws, "app", "message"), []byte("built into the image\n"), 0o644)
	res, log := h.run(context.Background(), `
steps:
  - name: image
    build: {context: app, tags: [latest]}
  - name: inside it
    needs: [image]
    image: self
    run: cat /message
`, engine.Job{ImageRepo: "demo/image", Annotations: map[string]string{"org.opencontainers.image.source": "test"}})
	if res.Status != engine.Success {
		t.Fatalf("run %s: %+v\n%s", res.Status, res.Steps[0], log)
	}
	if !strings.Contains(log, "inside it: built into the image") {
		t.Errorf("the later step did not run in the built image:\n%s", log)
	}
	img := res.Steps[0].Image
	if !strings.HasPrefix(img, "demo/image@sha256:") {
		t.Fatalf("build step image %q, want demo/image@sha256:...", img)
	}
	for _, tag := range []string{"7", "latest"} {
		_, _, dgst, err := h.reg.Manifest(context.Background(), "demo/image", tag)
		if err != nil {
			t.Fatalf("tag %s of the image is not in the registry: %v", tag, err)
		}
		if "demo/image@"+dgst.String() != img {
			t.Errorf("tag %s is %s, want %s", tag, dgst, img)
		}
	}

	// The next run's build leaves only its own image tagged on the engine, and the
	// layers only the earlier one had go too; the registry keeps both.
	host := h.e.Registry().Host
	layer7, err := h.e.Parent(context.Background(), host+"/demo/image:7")
	if err != nil || layer7 == "" {
		t.Fatalf("the parent of demo/image:7: %q %v", layer7, err)
	}
	os.WriteFile(filepath.Join(h.ws, "app", "message"), []byte("run 8\n"), 0o644)
	res, log = h.run(context.Background(), `
steps:
  - {name: image, build: {context: app, tags: [latest]}}
`, engine.Job{ImageRepo: "demo/image", Vars: engine.Vars{Run: 8}})
	if res.Status != engine.Success || !strings.Contains(log, "removed 1 earlier builds from this machine") {
		t.Fatalf("run 8 %s:\n%s", res.Status, log)
	}
	for tag, want := range map[string]bool{"7": false, "8": true, "latest": true} {
		if ok, err := h.e.HasImage(context.Background(), host+"/demo/image:"+tag); err != nil || ok != want {
			t.Errorf("demo/image:%s on the engine: %v (%v), want %v", tag, ok, err, want)
		}
	}
	// A container of an image that left the engine is still made: it comes back from
	// the registry (a deploy of an earlier release while a build prunes).
	id, err := h.e.Create(context.Background(), docker.Container{Image: host + "/demo/image:7", Cmd: []string{"true"}})
	if err != nil {
		t.Errorf("a container of the untagged demo/image:7: %v", err)
	} else {
		h.e.Remove(context.Background(), id)
	}
	if ok, err := h.e.HasImage(context.Background(), layer7); err != nil || ok {
		t.Errorf("run 7's own layer %s is still on the engine (%v)", layer7, err)
	}
	if _, _, _, err := h.reg.Manifest(context.Background(), "demo/image", "7"); err != nil {
		t.Errorf("the registry lost demo/image:7: %v", err)
	}
}

func TestShortImageNamesComeFromDroversRegistry(t *testing.T) {
	h := newHarness(t, true)
	ctx := context.Background()
	host := h.e.Registry().Host
	// A base image pushed to Drover's registry once, and not on this machine by that name.
	remote := host + "/tools/shell:1"
	if err := h.e.Tag(ctx, dockertest.Busybox, remote); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Push(ctx, remote, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Untag(ctx, remote); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.e.Untag(context.Background(), remote) })
	res, log := h.run(ctx, `
steps:
  - name: offline
    image: tools/shell:1
    run: echo "no Docker Hub needed"
`, engine.Job{})
	if res.Status != engine.Success || !strings.Contains(log, "no Docker Hub needed") {
		t.Fatalf("run %s: %+v\n%s", res.Status, res.Steps[0], log)
	}
	res, _ = h.run(ctx, `
steps:
  - name: missing
    image: tools/nothing:1
    run: "true"
`, engine.Job{})
	if r := res.Steps[0]; r.Status != engine.Errored || !strings.Contains(r.Reason, "docker push "+host+"/tools/nothing:1") {
		t.Errorf("an image in neither place: %+v; want an error saying where to push it", r)
	}
}

// A step container shares the workspace with the host, so nothing in it may gain
// privileges: not even root keeps a capability, and setuid files do not elevate (else a
// container step could plant a setuid-root file that a later host step runs; found in
// review).
func TestStepContainersCannotGainPrivileges(t *testing.T) {
	h := newHarness(t, false)
	_, log := h.run(context.Background(), `
steps:
  - name: inside
    image: `+dockertest.Busybox+`
    run: grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status
`, engine.Job{})
	for _, want := range []string{"inside: CapEff:\t0000000000000000", "inside: CapPrm:\t0000000000000000", "inside: NoNewPrivs:\t1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
