package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-cd/drover/internal/proctest"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
)

// startDetachedCommand makes the test binary a server that starts one detached instance
// and exits at once, as a server that restarts does: `BIN start-detached STATE` with a
// serverRequest on stdin; it prints the instance's pid.
const startDetachedCommand = "start-detached"

type serverRequest struct {
	Spec    runtime.Spec
	Secrets []string
}

func startDetachedMain() int {
	var req serverRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if len(req.Secrets) > 0 {
		req.Spec.Masker = mask.New(req.Secrets)
	}
	ctx, cancel := context.WithCancel(context.Background())
	inst, err := detachedRuntime(os.Args[2]).Start(ctx, req.Spec)
	cancel() // the server's context ends with it: the instance must not care
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(inst.Pid())
	return 0
}

// detachedRuntime is a Runtime with State whose shim is this test binary.
func detachedRuntime(state string) *Runtime {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return &Runtime{State: state, Shim: []string{exe, ShimCommand}, drain: 500 * time.Millisecond}
}

// stateDir is a State folder whose instances the test's end kills, waiting for their
// shims to go before the folder is removed.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		recs, _ := filepath.Glob(filepath.Join(dir, "*"+recordExt))
		for _, path := range recs {
			rec, err := readRecordFile(path)
			if err != nil {
				continue
			}
			if isProcess(rec.PGID, rec.LeaderStart) {
				_ = syscall.Kill(-rec.PGID, syscall.SIGKILL)
			}
			for i := 0; i < 1000 && isProcess(rec.ShimPID, rec.ShimStart); i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	return dir
}

// startInOtherServer starts s, detached on state, from a server process that exits
// right after; it returns the instance's pid.
func startInOtherServer(t *testing.T, state string, s runtime.Spec, secrets ...string) int {
	t.Helper()
	s.Masker = nil
	input, err := json.Marshal(serverRequest{Spec: s, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], startDetachedCommand, state)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("server: %v: %s", err, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("server's answer %q: %v", out, err)
	}
	return pid
}

// adoptOnly adopts with r and expects exactly one instance.
func adoptOnly(t *testing.T, r *Runtime) runtime.Adopted {
	t.Helper()
	adopted, err := r.Adopt(context.Background())
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if len(adopted) != 1 {
		t.Fatalf("Adopt returned %d instances, want 1", len(adopted))
	}
	return adopted[0]
}

// records lists the names of the records in state.
func records(t *testing.T, state string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(state, "*"+recordExt))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), recordExt))
	}
	return names
}

func TestDetachedInstanceIsAdoptedByTheNextServer(t *testing.T) {
	state := stateDir(t)
	s := spec(t, strconv.Quote(serverBin))
	s.Labels = map[string]string{"service": "catalog", "generation": "7"}
	before := time.Now()
	pid := startInOtherServer(t, state, s)

	a := adoptOnly(t, detachedRuntime(state))
	inst := a.Instance
	if inst.Pid() != pid || inst.Name() != s.Name {
		t.Errorf("adopted %s pid %d, want %s pid %d", inst.Name(), inst.Pid(), s.Name, pid)
	}
	if !maps.Equal(a.Labels, s.Labels) {
		t.Errorf("labels %v, want %v", a.Labels, s.Labels)
	}
	if a.Started.Before(before.Add(-time.Second)) || a.Started.After(time.Now()) {
		t.Errorf("started %s, want about %s", a.Started, before)
	}
	port := strings.TrimPrefix(inst.Addr(), "127.0.0.1:")
	if got := get(t, "http://"+inst.Addr()); !strings.HasPrefix(got, "PORT="+port+" ") {
		t.Errorf("adopted instance answers %q", got)
	}
	if got := inst.Tail(5); !slices.Contains(got, "listening on "+port) {
		t.Errorf("Tail %q holds no output from before the adoption", got)
	}
	if inst.Err() != nil {
		t.Errorf("Err %v while it runs", inst.Err())
	}
	// A second Adopt does not return what this Runtime watches already.
	if again, err := (detachedRuntime(state)).Adopt(context.Background()); err != nil || len(again) != 1 {
		t.Errorf("another Runtime adopts %d, %v", len(again), err)
	}

	if err := inst.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, inst)
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) {
		t.Errorf("Err %v, want ErrStopped", err)
	}
	if proctest.Alive(pid) {
		t.Error("the instance still runs after Stop")
	}
	if got := records(t, state); len(got) != 0 {
		t.Errorf("records %q remain after Stop", got)
	}
}

func TestAdoptSkipsItsOwnInstances(t *testing.T) {
	state := stateDir(t)
	r := detachedRuntime(state)
	inst := start(t, r, spec(t, "sleep 60"))
	adopted, err := r.Adopt(context.Background())
	if err != nil || len(adopted) != 0 {
		t.Fatalf("Adopt on the starting Runtime: %d instances, %v", len(adopted), err)
	}
	if _, err := r.Start(context.Background(), runtime.Spec{Name: inst.Name(), Dir: t.TempDir(), Command: "true"}); err == nil {
		t.Error("a second instance of the same name started")
	}
}

func TestDetachedInstanceKeepsWritingWithoutItsServer(t *testing.T) {
	state := stateDir(t)
	logFile := filepath.Join(t.TempDir(), "out.log")
	s := spec(t, `i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.01; done`)
	s.LogFile = logFile
	pid := startInOtherServer(t, state, s)

	lines := func() int {
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(data, []byte("\n"))
	}
	time.Sleep(300 * time.Millisecond)
	first := lines()
	time.Sleep(500 * time.Millisecond)
	if later := lines(); later <= first || !proctest.Alive(pid) {
		t.Fatalf("without its server the instance wrote %d then %d lines (alive: %v)",
			first, later, proctest.Alive(pid))
	}

	inst := adoptOnly(t, detachedRuntime(state)).Instance
	tail := inst.Tail(1)
	if len(tail) != 1 || !strings.HasPrefix(tail[0], "line ") {
		t.Errorf("Tail(1) %q", tail)
	}
	// Killed by someone else: Done closes and Err says how.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, inst)
	if err := inst.Err(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("Err %v, want signal: killed", err)
	}
	// As with an attached instance's *exec.ExitError, the wait status is there.
	var ws interface{ Sys() any }
	if !errors.As(inst.Err(), &ws) || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Err %v carries no wait status of SIGKILL", inst.Err())
	}
	if got := records(t, state); len(got) != 0 {
		t.Errorf("records %q remain after the instance ended", got)
	}
}

func TestDetachedSecretsNeverReachTheLogFile(t *testing.T) {
	state := stateDir(t)
	const secret = "k3y-of-the-catalog"
	logFile := filepath.Join(t.TempDir(), "x.log")
	s := spec(t, `echo "key is $API_KEY"; printf '%s' "$API_KEY" | base64; printf 'ends with %s' "$API_KEY"`)
	s.Env = append(s.Env, "API_KEY="+secret)
	s.LogFile = logFile
	s.Masker = mask.New([]string{secret})
	inst := start(t, detachedRuntime(state), s)
	waitDone(t, inst)
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != "key is ***\n***\nends with ***" {
		t.Errorf("log file %q", got)
	}
	want := []string{"key is ***", "***", "ends with ***"}
	if got := inst.Tail(10); !slices.Equal(got, want) {
		t.Errorf("Tail %q, want %q", got, want)
	}
	if err := inst.Err(); err == nil || err.Error() != "exit status 0" {
		t.Errorf("Err %v", err)
	}

	// The same from a server that exited: the shim masks on its own.
	logFile2 := filepath.Join(t.TempDir(), "y.log")
	s2 := spec(t, `echo "key is $API_KEY"; sleep 60`)
	s2.Env, s2.LogFile = s.Env, logFile2
	startInOtherServer(t, state, s2, secret)
	inst2 := adoptOnly(t, detachedRuntime(state)).Instance
	for i := 0; i < 500 && len(inst2.Tail(1)) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := inst2.Tail(1); !slices.Equal(got, []string{"key is ***"}) {
		t.Errorf("Tail %q", got)
	}
	if data, _ := os.ReadFile(logFile2); bytes.Contains(data, []byte(secret)) {
		t.Errorf("the secret is in the log file: %q", data)
	}
	_ = inst2.Stop(context.Background())
}

func TestDetachedExitStatusAndTailAfterTheLogIsGone(t *testing.T) {
	state := stateDir(t)
	inst := start(t, detachedRuntime(state), spec(t, `echo bye; exit 3`))
	waitDone(t, inst)
	if err := inst.Err(); err == nil || err.Error() != "exit status 3" || errors.Is(err, runtime.ErrStopped) {
		t.Errorf("Err %v, want exit status 3", err)
	}
	if got := inst.Tail(10); !slices.Equal(got, []string{"bye"}) {
		t.Errorf("Tail %q", got)
	}
	// The log was the runtime's own (Spec.LogFile ""): it went with the record.
	if left, _ := os.ReadDir(state); len(left) != 0 {
		t.Errorf("State holds %d files after the instance ended", len(left))
	}
}

func TestDetachedStartContextEndDoesNotStopIt(t *testing.T) {
	state := stateDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := spec(t, strconv.Quote(serverBin))
	inst, err := detachedRuntime(state).Start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-inst.Done():
		t.Fatalf("the instance ended with Start's context: %v", inst.Err())
	default:
	}
	get(t, "http://"+inst.Addr())
	ctx, cancel = context.WithCancel(context.Background())
	cancel() // no grace
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inst.Err(); !errors.Is(err, runtime.ErrStopped) {
		t.Errorf("Err %v", err)
	}
}

func TestDetachedStartErrorLeavesNothing(t *testing.T) {
	state := stateDir(t)
	s := spec(t, "true")
	s.Dir = filepath.Join(t.TempDir(), "missing")
	if _, err := detachedRuntime(state).Start(context.Background(), s); err == nil {
		t.Fatalf("Start in a missing folder: %v", err)
	}
	if left, _ := os.ReadDir(state); len(left) != 0 {
		t.Errorf("State holds %d files after a failed start", len(left))
	}
}

func TestAdoptForgetsStaleRecords(t *testing.T) {
	state := stateDir(t)
	self, ok := startTime(os.Getpid())
	if !ok {
		t.Fatal("no start time for this process")
	}
	// An instance that ended with nobody watching.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// A group whose shim is gone: it is killed.
	orphan := exec.Command("sleep", "60")
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = orphan.Process.Kill(); _ = orphan.Wait() })
	orphanStart, _ := startTime(orphan.Process.Pid)
	for _, rec := range []record{
		{Name: "ended", PGID: gone.Process.Pid, LeaderStart: 1, ShimPID: gone.Process.Pid, ShimStart: 1, Exit: "exit status 0"},
		// This process took the pids since: it started at another time, and lives on.
		{Name: "reused", PGID: os.Getpid(), LeaderStart: self + 1, ShimPID: os.Getpid(), ShimStart: self + 1},
		{Name: "orphan", PGID: orphan.Process.Pid, LeaderStart: orphanStart, ShimPID: gone.Process.Pid, ShimStart: 1},
	} {
		if err := writeRecord(state, rec); err != nil {
			t.Fatal(err)
		}
	}
	adopted, err := detachedRuntime(state).Adopt(context.Background())
	if err != nil || len(adopted) != 0 {
		t.Fatalf("Adopt: %d instances, %v", len(adopted), err)
	}
	if got := records(t, state); len(got) != 0 {
		t.Errorf("records %q remain", got)
	}
	if err := orphan.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("the orphaned group: %v, want killed", err)
	}
}

func TestAdoptWithoutState(t *testing.T) {
	for _, r := range []*Runtime{{}, detachedRuntime(filepath.Join(t.TempDir(), "none"))} {
		if adopted, err := r.Adopt(context.Background()); err != nil || len(adopted) != 0 {
			t.Errorf("Adopt with State %q: %d, %v", r.State, len(adopted), err)
		}
	}
}
