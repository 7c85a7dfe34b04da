package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-cd/drover/internal/proctest"
)

// droverBin is the drover binary built once for the end-to-end tests.
var droverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	droverBin = filepath.Join(dir, "drover")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-test", "-o", droverBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building drover:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a finished drover process left.
type result struct {
	code           int
	stdout, stderr string
}

// workspace makes a folder holding drover.yml with the given content.
func workspace(t *testing.T, yml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "drover.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// drover runs the binary in dir and waits for it.
func drover(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(droverBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run drover: %v", err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitForLine waits until path holds a whole line: a shell creates a file before it
// writes to it, so its mere existence says too little.
func waitForLine(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(data), "\n") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never got a line", path)
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := drover(t, workspace(t, "steps:\n  - {name: a, run: echo}\n  - {name: b, run: echo}\n"), "validate")
	if ok.code != 0 || !strings.Contains(ok.stdout, "drover.yml is valid: 2 steps") {
		t.Errorf("valid file:\n%s", ok)
	}
	bad := drover(t, workspace(t, "steps:\n  - name: a\n    rn: echo\n    timeout: soon\n"), "validate")
	want := "drover.yml:3:5: unknown step field \"rn\"; did you mean \"run\"?\ndrover.yml:4:14: timeout: \"soon\" is not a duration"
	if bad.code != 2 || !strings.Contains(bad.stderr, want) {
		t.Errorf("invalid file, want exit 2 and\n%s\ngot:\n%s", want, bad)
	}
	missing := drover(t, t.TempDir(), "validate")
	if missing.code != 2 || !strings.Contains(missing.stderr, "no pipeline file here") {
		t.Errorf("missing file:\n%s", missing)
	}
}

func TestRunIsInvalidWithoutRunningAnything(t *testing.T) {
	t.Parallel()
	dir := workspace(t, "steps:\n  - {name: a, run: touch ran}\n  - {name: b, needs: [c], run: echo}\n")
	r := drover(t, dir, "run")
	if r.code != 2 || !strings.Contains(r.stderr, `drover.yml:3:23: step "b" needs "c", which is not a step`) {
		t.Errorf("want exit 2 with the position:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("a step ran although the file is invalid")
	}
}

func TestParallelStepsOverlap(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - {name: a, needs: [], run: "date +%s.%N > a.start; sleep 1; date +%s.%N > a.end"}
  - {name: b, needs: [], run: "date +%s.%N > b.start; sleep 1; date +%s.%N > b.end"}
`)
	r := drover(t, dir, "run", "--parallel", "2")
	if r.code != 0 {
		t.Fatalf("run failed:\n%s", r)
	}
	stamp := func(name string) float64 {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		f, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return f
	}
	if stamp("a.start") >= stamp("b.end") || stamp("b.start") >= stamp("a.end") {
		t.Errorf("a (%f–%f) and b (%f–%f) did not overlap", stamp("a.start"), stamp("a.end"), stamp("b.start"), stamp("b.end"))
	}
}

func TestTimeoutKillsAChildThatIgnoresTERM(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - name: stuck
    timeout: 1s
    run: |
      trap '' TERM
      sh -c 'trap "" TERM; echo $$ > child.pid; while true; do sleep 1; done'
  - {name: cleanup, when: {status: always}, run: echo cleaned}
`)
	start := time.Now()
	r := drover(t, dir, "run", "--grace", "300ms")
	if r.code != 1 || !strings.Contains(r.stdout, "timed out after 1s") || !strings.Contains(r.stdout, "cleanup | cleaned") {
		t.Fatalf("want exit 1, a timeout and the clean-up:\n%s", r)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the run took %s", d)
	}
	if pid := readPid(t, filepath.Join(dir, "child.pid")); proctest.Alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("child %d that ignores TERM survived the timeout", pid)
	}
}

func TestInterruptStopsStepsRunsCleanupAndExits130(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - {name: long, run: "sleep 60 & echo $! > bg.pid; echo $$ > shell.pid; wait"}
  - {name: never, run: touch never}
  - {name: cleanup, when: {status: always}, run: echo cleaned > cleaned}
`)
	cmd := exec.Command(droverBin, "run")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, filepath.Join(dir, "shell.pid"))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d (%v), want 130:\n%s", code, err, out.String())
	}
	for _, f := range []string{"bg.pid", "shell.pid"} {
		if pid := readPid(t, filepath.Join(dir, f)); proctest.Alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("%s: process %d left behind after Ctrl-C", f, pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cleaned")); err != nil {
		t.Errorf("the clean-up step did not run: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Error("a step after the interrupted one ran")
	}
	if !strings.Contains(out.String(), "long") || !strings.Contains(out.String(), "cancelled") {
		t.Errorf("the summary does not show the cancelled step:\n%s", out.String())
	}
}

func TestFailingJUnitReportFailsTheRun(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - name: test
    run: |
      mkdir -p reports
      cat > reports/unit.xml <<'XML'
      <testsuites><testsuite name="shop">
        <testcase classname="shop" name="TestPrice"/>
        <testcase classname="shop" name="TestStock"><failure message="want 3, got 2">stock_test.go:12</failure></testcase>
      </testsuite></testsuites>
      XML
    reports: {junit: "reports/*.xml"}
  - {name: deploy-ish, run: touch deployed}
`)
	r := drover(t, dir, "run")
	if r.code != 1 {
		t.Fatalf("want exit 1:\n%s", r)
	}
	for _, want := range []string{"tests 1 passed, 1 failed, 0 skipped", "1 test failed", "run failure"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "deployed")); err == nil {
		t.Error("the step after a failed test report ran")
	}
}

func TestCoverageGateNamesFigureAndThreshold(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - name: test
    run: "printf 'mode: set\\nx.go:1.1,2.2 1 1\\nx.go:3.1,4.2 1 0\\n' > cover.out"
    reports: {coverage: cover.out}
    gates: {coverage: 70}
`)
	r := drover(t, dir, "run")
	if r.code != 1 || !strings.Contains(r.stdout, "coverage 50") || !strings.Contains(r.stdout, "70%") {
		t.Fatalf("want exit 1 naming 50%% and 70%%:\n%s", r)
	}
}

func TestArtifactsHaveStableDigests(t *testing.T) {
	t.Parallel()
	yml := `
steps:
  - name: build
    run: mkdir -p dist && printf 'binary' > dist/app && chmod +x dist/app && touch -d @$(date +%s) dist/app
    artifacts: [dist/]
`
	digest := func(dir string) string {
		r := drover(t, dir, "run")
		if r.code != 0 {
			t.Fatalf("run failed:\n%s", r)
		}
		i := strings.Index(r.stdout, "artifact sha256:")
		if i < 0 {
			t.Fatalf("no artifact digest printed:\n%s", r)
		}
		return strings.Fields(r.stdout[i:])[1]
	}
	a, b := workspace(t, yml), workspace(t, yml)
	first := digest(a)
	time.Sleep(1100 * time.Millisecond) // a different mtime must not change the digest
	if second := digest(b); first != second {
		t.Errorf("two runs over the same content gave %s and %s", first, second)
	}
	hex := strings.TrimPrefix(first, "sha256:")
	if _, err := os.Stat(filepath.Join(a, ".drover", "artifacts", "blobs", "sha256", hex)); err != nil {
		t.Errorf("the artifact blob is not stored content-addressed: %v", err)
	}
}

func TestLogFilesAndBuiltinVariables(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - {name: show, run: 'echo "$DROVER $DROVER_RUN $DROVER_STEP $DROVER_BRANCH $DROVER_COMMIT $X"'}
`)
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "trunk")
	git("add", "drover.yml")
	git("commit", "-q", "-m", "first")
	commit := git("rev-parse", "HEAD")
	r := drover(t, dir, "run", "--env", "X=from-flag")
	want := "true 1 show trunk " + commit + " from-flag"
	if r.code != 0 || !strings.Contains(r.stdout, "show | "+want) {
		t.Fatalf("want %q:\n%s", want, r)
	}
	log, err := os.ReadFile(filepath.Join(dir, ".drover", "runs", "1", "01-show.log"))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Split(string(log), "\n")[1]
	stamp, text, _ := strings.Cut(line, " ")
	if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil || text != want {
		t.Errorf("log line %q: want a timestamp and %q (%v)", line, want, err)
	}
	if r := drover(t, dir, "run"); !strings.Contains(r.stdout, "logs: .drover/runs/2") {
		t.Errorf("the second run is not number 2:\n%s", r)
	}
}

func TestBadFlagsAreExit2(t *testing.T) {
	t.Parallel()
	dir := workspace(t, "steps:\n  - {name: build, run: echo}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--step", "biuld"}, `did you mean "build"`},
		{[]string{"run", "--env", "NOEQUALS"}, "KEY=VALUE"},
		{[]string{"run", "--event", "pushed"}, "--event"},
		{[]string{"run", "--no-such-flag"}, "unknown flag"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		if r := drover(t, dir, tc.args...); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("drover %v: want exit 2 and %q:\n%s", tc.args, tc.want, r)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"", "run", "validate", "schema", "version", "server", "token", "token create", "project add"} {
		args := append(strings.Fields(cmd), "--help")
		r := drover(t, t.TempDir(), args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("drover %s --help:\n%s", cmd, r)
		}
	}
}

func TestSchemaIsJSONSchema(t *testing.T) {
	t.Parallel()
	r := drover(t, t.TempDir(), "schema")
	if r.code != 0 || !strings.Contains(r.stdout, `"$schema": "https://json-schema.org/draft/2020-12/schema"`) ||
		!strings.Contains(r.stdout, `"allow_failure"`) {
		t.Errorf("schema:\n%s", r)
	}
}

// The README's first command runs this example; it must pass on a fresh checkout.
func TestExampleHelloPipelinePasses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program; skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/hello")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, ".drover"))
	r := drover(t, dir, "run")
	for _, want := range []string{"build   | hello, Drover!", "coverage 100.0%", "staging  skipped", "run success"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if r.code != 0 || t.Failed() {
		t.Fatalf("the example pipeline failed:\n%s", r)
	}
}

// Without a server, drover run takes secrets from its own environment, says so, masks
// them, and fails a step whose secret is not set there before it starts.
func TestRunTakesSecretsFromTheShell(t *testing.T) {
	t.Parallel()
	dir := workspace(t, `
steps:
  - {name: uses, secrets: [DROVER_TEST_SECRET_VALUE], run: 'echo "value: $DROVER_TEST_SECRET_VALUE"'}
  - {name: missing, secrets: [DROVER_TEST_SECRET_UNSET], run: 'echo started'}
  - {name: asks-not, needs: [], run: 'echo "not asked: ${DROVER_TEST_SECRET_VALUE:-absent}"'}
`)
	cmd := exec.Command(droverBin, "run")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "DROVER_TEST_SECRET_VALUE=open-sesame-42")
	out, _ := cmd.CombinedOutput()
	s := string(out)
	if strings.Contains(s, "open-sesame-42") || !strings.Contains(s, "value: ***") {
		t.Errorf("the secret is not masked:\n%s", s)
	}
	if !strings.Contains(s, "not asked: absent") {
		t.Errorf("a step that did not ask got the secret from the shell:\n%s", s)
	}
	if !strings.Contains(s, "takes DROVER_TEST_SECRET_VALUE from this shell's environment") {
		t.Errorf("drover run does not say where the secret comes from:\n%s", s)
	}
	if !strings.Contains(s, "export DROVER_TEST_SECRET_UNSET=") || strings.Contains(s, "started") {
		t.Errorf("a step with a missing secret ran or did not say what to do:\n%s", s)
	}
	if cmd.ProcessState.ExitCode() != exitFailed {
		t.Errorf("exit code %d, want %d", cmd.ProcessState.ExitCode(), exitFailed)
	}
}

// The logs' path is given from where drover was started, not from -C's folder.
func TestRunNamesItsLogsFromTheCallersFolder(t *testing.T) {
	t.Parallel()
	dir := workspace(t, "steps:\n  - {name: hi, run: echo hi}\n")
	r := drover(t, filepath.Dir(dir), "run", "-C", filepath.Base(dir))
	want := "logs: " + filepath.Join(filepath.Base(dir), ".drover", "runs", "1")
	if r.code != 0 || !strings.Contains(r.stdout, want+"\n") {
		t.Fatalf("want %q:\n%s", want, r)
	}
}

func TestVersionIsStampedAndAnswersBothWays(t *testing.T) {
	t.Parallel()
	a, b := drover(t, "", "version"), drover(t, "", "--version")
	if a.code != 0 || b.code != 0 || !strings.HasPrefix(a.stdout, "drover v0.0.0-test") || a.stdout != b.stdout {
		t.Errorf("drover version: %s\ndrover --version: %s", a, b)
	}
}
