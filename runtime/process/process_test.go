package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drover-cd/drover/internal/proctest"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
)

// serverBin is testdata/httpserver, built once by TestMain.
var serverBin string

func TestMain(m *testing.M) {
	// The test binary is also the shim and a short-lived server: see detached_test.go.
	if len(os.Args) >= 2 {
		switch os.Args[1] {
		case ShimCommand:
			os.Exit(RunShim(os.Stdin, os.Stdout))
		case startDetachedCommand:
			os.Exit(startDetachedMain())
		}
	}
	dir, err := os.MkdirTemp("", "runtime-process-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "httpserver")
	// go test puts its own go first in PATH.
	if out, err := exec.Command("go", "build", "-o", serverBin, "./testdata/httpserver").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build testdata/httpserver: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var names atomic.Int64

// spec is an instance of command in a fresh folder, with a short stop timeout.
func spec(t *testing.T, command string) runtime.Spec {
	t.Helper()
	return runtime.Spec{
		Name:        fmt.Sprintf("test.%d", names.Add(1)),
		Dir:         t.TempDir(),
		Command:     command,
		Env:         []string{"PATH=" + os.Getenv("PATH"), "GREETING=hi"},
		StopTimeout: 5 * time.Second,
	}
}

// start starts s on r; the test's end kills the instance if it still runs.
func start(t *testing.T, r *Runtime, s runtime.Spec) runtime.Instance {
	t.Helper()
	inst, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no grace: SIGKILL at once
		_ = inst.Stop(ctx)
	})
	return inst
}

// waitDone waits for the instance to exit, failing the test when it does not in a
// time no working runtime needs.
func waitDone(t *testing.T, inst runtime.Instance) {
	t.Helper()
	select {
	case <-inst.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit; output: %q", inst.Name(), inst.Tail(20))
	}
}

// readPid waits for a script to write a process id into file.
func readPid(t *testing.T, file string) int {
	t.Helper()
	for range 3000 {
		data, err := os.ReadFile(file)
		if s := strings.TrimSpace(string(data)); err == nil && strings.HasSuffix(string(data), "\n") {
			pid, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s was never written", file)
	return 0
}

// get fetches url, retrying while the server is still starting.
func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var err error
	for range 500 {
		var resp *http.Response
		if resp, err = client.Get(url); err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil {
				t.Fatal(rerr)
			}
			return string(body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, err)
	return ""
}

func TestServerGetsPortAndAnswers(t *testing.T) {
	s := spec(t, strconv.Quote(serverBin))
	inst := start(t, &Runtime{}, s)
	host, port, err := net.SplitHostPort(inst.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr %q: want 127.0.0.1 and a picked port", inst.Addr())
	}
	if inst.Name() != s.Name || inst.Pid() <= 0 {
		t.Errorf("Name %q Pid %d", inst.Name(), inst.Pid())
	}
	if got, want := get(t, "http://"+inst.Addr()+"/"), "PORT="+port+" DIR="+s.Dir+"\n"; got != want {
		t.Errorf("the server answered %q, want %q", got, want)
	}
	if err := inst.Err(); err != nil {
		t.Errorf("Err while running: %v", err)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) {
		t.Errorf("Err after Stop = %v, want it to wrap ErrStopped", err)
	}
	if got := inst.Tail(1); !slices.Equal(got, []string{"listening on " + port}) {
		t.Errorf("Tail(1) = %q", got)
	}
}

// Spec.Port is used as given, and the runtime's PORT wins over one in Spec.Env.
func TestFixedPortWinsOverEnv(t *testing.T) {
	port, err := runtime.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := spec(t, `echo "$PORT"`)
	s.Port = port
	s.Env = append(s.Env, "PORT=1")
	inst := start(t, &Runtime{}, s)
	waitDone(t, inst)
	if want := "127.0.0.1:" + strconv.Itoa(port); inst.Addr() != want {
		t.Errorf("Addr %q, want %q", inst.Addr(), want)
	}
	if got := inst.Tail(5); !slices.Equal(got, []string{strconv.Itoa(port)}) {
		t.Errorf("PORT was %q, want %d", got, port)
	}
}

func TestExitStatusEnvDirAndLogFile(t *testing.T) {
	r := &Runtime{}
	logFile := filepath.Join(t.TempDir(), "logs", "staging", "catalog", "x.log")
	s := spec(t, `echo "$GREETING"; pwd; echo oops >&2; exit 3`)
	s.LogFile = logFile
	inst := start(t, r, s)
	waitDone(t, inst)
	err := inst.Err()
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || errors.Is(err, runtime.ErrStopped) {
		t.Errorf("Err = %v, want exit status 3 (not stopped)", err)
	}
	want := []string{"hi", s.Dir, "oops"}
	if got := inst.Tail(10); !slices.Equal(got, want) {
		t.Errorf("Tail = %q, want %q", got, want)
	}

	// A second instance appends to the same file.
	s2 := spec(t, `echo again`)
	s2.LogFile = logFile
	waitDone(t, start(t, r, s2))
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "hi\n"+s.Dir+"\noops\nagain\n"; got != want {
		t.Errorf("log file %q, want %q", got, want)
	}
}

func TestTailKeepsTheLastLines(t *testing.T) {
	inst := start(t, &Runtime{}, spec(t,
		`i=1; while [ $i -le 300 ]; do echo "line $i"; i=$((i+1)); done; printf unfinished`))
	waitDone(t, inst)
	if got, want := inst.Tail(3), []string{"line 299", "line 300", "unfinished"}; !slices.Equal(got, want) {
		t.Errorf("Tail(3) = %q, want %q", got, want)
	}
	all := inst.Tail(1000)
	if len(all) != tailLines+1 || all[0] != "line 101" {
		t.Errorf("Tail(1000) has %d lines from %q; want the last %d and the unfinished one", len(all), all[0], tailLines)
	}
	if got := inst.Tail(0); len(got) != 0 {
		t.Errorf("Tail(0) = %q", got)
	}
}

func TestStopTerminatesTheWholeGroup(t *testing.T) {
	s := spec(t, `sh -c 'sleep 60 & echo $! > grandchild.pid; wait' & wait`)
	inst := start(t, &Runtime{}, s)
	grandchild := readPid(t, filepath.Join(s.Dir, "grandchild.pid"))
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if proctest.Alive(grandchild) {
		t.Error("the grandchild survived Stop")
	}
	if proctest.Alive(inst.Pid()) {
		t.Error("the leader survived Stop")
	}
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("Err = %v, want stopped by SIGTERM", err)
	}
}

func TestStopKillsAfterStopTimeoutWhenTERMIsIgnored(t *testing.T) {
	// Ignored signals stay ignored across fork and exec: the whole group ignores TERM.
	s := spec(t, `trap '' TERM; sh -c 'sleep 60 & echo $! > grandchild.pid; wait' & wait`)
	s.StopTimeout = 100 * time.Millisecond
	inst := start(t, &Runtime{}, s)
	grandchild := readPid(t, filepath.Join(s.Dir, "grandchild.pid"))
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-inst.Done():
	default:
		t.Fatal("Stop returned before the instance exited")
	}
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Err = %v, want stopped by SIGKILL", err)
	}
	if proctest.Alive(grandchild) {
		t.Error("the grandchild survived")
	}
}

// A Stop whose ctx ends does not wait for StopTimeout (an hour here: a runtime that
// waited would hang the test).
func TestStopKillsWhenItsContextEnds(t *testing.T) {
	s := spec(t, `trap '' TERM; echo ready; while :; do sleep 1; done`)
	s.StopTimeout = time.Hour
	inst := start(t, &Runtime{}, s)
	for len(inst.Tail(1)) == 0 { // TERM before the trap would end the script at once
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := inst.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Err = %v, want stopped by SIGKILL", err)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	inst := start(t, &Runtime{}, spec(t, `sleep 60`))
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = inst.Stop(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Stop %d: %v", i, err)
		}
	}
	first := inst.Err()
	if err := inst.Stop(context.Background()); err != nil || inst.Err() != first {
		t.Errorf("Stop after exit: %v, Err %v → %v", err, first, inst.Err())
	}
}

// When the leader exits by itself, what it left running in its group is killed.
func TestLeaderExitKillsItsGroup(t *testing.T) {
	s := spec(t, `sleep 60 & echo $! > child.pid`)
	inst := start(t, &Runtime{}, s)
	waitDone(t, inst)
	child := readPid(t, filepath.Join(s.Dir, "child.pid"))
	if proctest.Alive(child) {
		t.Error("the child of an exited leader survived")
	}
	if err := inst.Err(); err == nil || err.Error() != "exit status 0" {
		t.Errorf("Err = %v, want exit status 0", err)
	}
}

func TestStartContextEndStopsTheInstance(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	inst, err := (&Runtime{}).Start(ctx, spec(t, `sleep 60`))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitDone(t, inst)
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) {
		t.Errorf("Err = %v, want it to wrap ErrStopped", err)
	}
}

// A process that leaves the group (setsid) and keeps the output open cannot hold Done
// back for longer than the drain time.
func TestEscapedProcessDoesNotHoldDone(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	s := spec(t, `setsid sh -c 'echo $$ > escaped.pid; exec sleep 60' & while [ ! -s escaped.pid ]; do sleep 0.01; done`)
	inst := start(t, &Runtime{drain: 50 * time.Millisecond}, s)
	readPid(t, filepath.Join(s.Dir, "escaped.pid")) // killed at the test's end
	waitDone(t, inst)
}

func TestStartErrors(t *testing.T) {
	r := &Runtime{}
	bad := spec(t, "true")
	bad.Name = "a/b"
	if _, err := r.Start(context.Background(), bad); err == nil {
		t.Error("a name with '/' was accepted")
	}
	missing := spec(t, "true")
	missing.Dir = filepath.Join(missing.Dir, "missing")
	if _, err := r.Start(context.Background(), missing); err == nil || !strings.Contains(err.Error(), missing.Name) {
		t.Errorf("Start in a missing folder: %v", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("shutting down")
	cancel(cause)
	if _, err := r.Start(ctx, spec(t, "true")); !errors.Is(err, cause) {
		t.Errorf("Start with an ended context: %v, want its cause", err)
	}
	if len(r.running) != 0 {
		t.Errorf("%d groups tracked after failed starts", len(r.running))
	}
}

// A crashed server's instances (recorded, carrying its marker) are killed by the next
// one; a recorded id now used by another process, and the new server's own instances,
// are left alone.
func TestKillLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "instances")
	crashed := &Runtime{Leftovers: dir}
	var crashedInsts []runtime.Instance
	var grandchildren []int
	for range 2 {
		s := spec(t, `sh -c 'sleep 60 & echo $! > grandchild.pid; wait' & wait`)
		crashedInsts = append(crashedInsts, start(t, crashed, s))
		grandchildren = append(grandchildren, readPid(t, filepath.Join(s.Dir, "grandchild.pid")))
	}

	// Recorded ids now used by processes that are not instances of this server.
	var strangers []*exec.Cmd
	for _, env := range [][]string{nil, {MarkerEnv + "=" + dir + "-other"}} {
		cmd := exec.Command("sleep", "60")
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(cmd.Process.Pid)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, cmd)
	}

	restarted := &Runtime{Leftovers: dir}
	own := start(t, restarted, spec(t, `sleep 60`))
	n, err := restarted.KillLeftovers()
	if err != nil || n != 2 {
		t.Fatalf("KillLeftovers: %d, %v; want the 2 groups of the crashed server", n, err)
	}
	for i, inst := range crashedInsts {
		waitDone(t, inst)
		if proctest.Alive(grandchildren[i]) {
			t.Errorf("a grandchild of %s survived", inst.Name())
		}
	}
	for _, cmd := range strangers { // the kills above have landed by now
		if !proctest.Running(cmd.Process.Pid) {
			t.Errorf("process %d without the marker was killed (env %q)", cmd.Process.Pid, cmd.Env)
		}
	}
	select {
	case <-own.Done():
		t.Fatalf("the new server's own instance was killed: %v", own.Err())
	default:
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != strconv.Itoa(own.Pid()) {
		t.Errorf("records left: %v; want only the running instance's", entries)
	}
	if err := own.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("records left after Stop: %v", entries)
	}
}

func TestKillLeftoversWithoutRecords(t *testing.T) {
	for _, r := range []*Runtime{{}, {Leftovers: filepath.Join(t.TempDir(), "missing")}} {
		if n, err := r.KillLeftovers(); n != 0 || err != nil {
			t.Errorf("KillLeftovers with Leftovers %q: %d, %v", r.Leftovers, n, err)
		}
	}
}

func TestSecretsAreMaskedInTheTailAndTheLogFile(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "x.log")
	s := spec(t, `echo "key is $API_KEY"; printf '%s' "$API_KEY" | base64; printf 'ends with %s' "$API_KEY"`)
	s.Env = append(s.Env, "API_KEY=k3y-of-the-catalog")
	s.LogFile = logFile
	s.Masker = mask.New([]string{"k3y-of-the-catalog"})
	inst := start(t, &Runtime{}, s)
	waitDone(t, inst)
	want := []string{"key is ***", "***", "ends with ***"}
	if got := inst.Tail(10); !slices.Equal(got, want) {
		t.Errorf("Tail %q, want %q", got, want)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != "key is ***\n***\nends with ***" {
		t.Errorf("log file %q", got)
	}
}
