package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/pipeline"
)

// runJob runs yml on the fake backend in a temporary workspace.
func runJob(t *testing.T, f *fakeBackend, parallel int, yml string, edit func(*Job)) (*RunResult, *recorder) {
	t.Helper()
	ws := t.TempDir()
	f.writeFn = func(name, text string) error {
		path := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(text), 0o644)
	}
	rec := &recorder{}
	job := Job{Graph: compile(t, yml), Workspace: ws, Sink: rec, Vars: Vars{Run: 7, Branch: "main", Event: "push", Workspace: ws},
		Trigger: pipeline.Trigger{Branch: "main", Event: "push"}}
	if edit != nil {
		edit(&job)
	}
	e := &Engine{Backend: f, Parallel: parallel}
	res, err := e.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return res, rec
}

func TestStepsRunInWrittenOrder(t *testing.T) {
	f := newFake()
	res, _ := runJob(t, f, 4, `
steps:
  - {name: a, run: sleep 20ms}
  - {name: b, run: sleep 20ms}
  - {name: c, run: sleep 20ms}
`, nil)
	if res.Status != Success {
		t.Fatalf("status %s, want success: %s", res.Status, statuses(res))
	}
	if f.peak != 1 {
		t.Errorf("%d steps ran at once; steps without needs must wait for the one above", f.peak)
	}
	if !f.spans["b"][0].After(f.spans["a"][1].Add(-time.Millisecond)) || f.spans["c"][0].Before(f.spans["b"][1]) {
		t.Errorf("steps did not run one after the other: %v", f.spans)
	}
}

func TestIndependentStepsRunInParallelUpToTheLimit(t *testing.T) {
	yml := `
steps:
  - {name: a, needs: [], run: sleep 80ms}
  - {name: b, needs: [], run: sleep 80ms}
  - {name: c, needs: [], run: sleep 80ms}
  - {name: d, needs: [], run: sleep 80ms}
  - {name: join, needs: [a, b, c, d], run: echo joined}
`
	f := newFake()
	res, _ := runJob(t, f, 4, yml, nil)
	if res.Status != Success || f.peak != 4 {
		t.Fatalf("status %s, peak %d; want success with 4 steps at once", res.Status, f.peak)
	}
	for _, s := range []string{"a", "b", "c", "d"} {
		if f.spans["join"][0].Before(f.spans[s][1]) {
			t.Errorf("join started before %s ended", s)
		}
	}
	f = newFake()
	runJob(t, f, 2, yml, nil)
	if f.peak != 2 {
		t.Errorf("with Parallel 2, %d steps ran at once", f.peak)
	}
}

func TestFailureSkipsLaterStepsButRunsFailureAndCleanupSteps(t *testing.T) {
	f := newFake()
	res, rec := runJob(t, f, 2, `
steps:
  - {name: test, run: echo testing; exit 3}
  - {name: build, run: echo never}
  - {name: report, when: {status: failure}, run: echo reporting}
  - {name: cleanup, when: {status: always}, run: echo cleaning}
  - {name: only-ok, needs: [], when: {status: failure}, run: echo no}
`, nil)
	if res.Status != Failure {
		t.Fatalf("run status %s, want failure", res.Status)
	}
	if got := result(t, res, "test"); got.ExitCode != 3 || got.Reason != "exit code 3" {
		t.Errorf("test: exit %d reason %q", got.ExitCode, got.Reason)
	}
	want := "test=failure build=skipped report=success cleanup=success only-ok=skipped"
	if got := statuses(res); got != want {
		t.Errorf("statuses\n got %s\nwant %s", got, want)
	}
	if got := result(t, res, "build").Reason; got != "an earlier step failed" {
		t.Errorf("build skip reason %q", got)
	}
	if len(rec.logs("build")) != 0 {
		t.Error("a skipped step printed output")
	}
}

func TestAllowFailureKeepsTheRunGreen(t *testing.T) {
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: flaky-lint, run: exit 1, allow_failure: true}
  - {name: build, run: echo ok}
`, nil)
	if res.Status != Success {
		t.Fatalf("run %s: %s", res.Status, statuses(res))
	}
	if s := result(t, res, "flaky-lint"); s.Status != Failure || !s.Allowed {
		t.Errorf("flaky-lint: %s allowed=%v", s.Status, s.Allowed)
	}
	if result(t, res, "build").Status != Success {
		t.Error("the step after an allowed failure did not run")
	}
}

func TestRetry(t *testing.T) {
	res, rec := runJob(t, newFake(), 1, `
steps:
  - {name: eventually, run: flaky 2, retry: 2}
  - {name: never, needs: [], run: flaky 5, retry: 1}
`, nil)
	if s := result(t, res, "eventually"); s.Status != Success || s.Attempts != 3 {
		t.Errorf("eventually: %s after %d attempts; want success after 3", s.Status, s.Attempts)
	}
	if s := result(t, res, "never"); s.Status != Failure || s.Attempts != 2 {
		t.Errorf("never: %s after %d attempts; want failure after 2", s.Status, s.Attempts)
	}
	if !strings.Contains(rec.notes("eventually"), "retrying: attempt 3 of 3") {
		t.Errorf("no retry note: %q", rec.notes("eventually"))
	}
}

func TestTimeoutFailsTheStep(t *testing.T) {
	start := time.Now()
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: slow, run: block, timeout: 50ms, retry: 1}
  - {name: after, run: echo no}
`, nil)
	s := result(t, res, "slow")
	if s.Status != Failure || s.Reason != "timed out after 50ms" || s.Attempts != 2 {
		t.Fatalf("slow: %s %q after %d attempts", s.Status, s.Reason, s.Attempts)
	}
	if res.Status != Failure || result(t, res, "after").Status != Skipped {
		t.Errorf("run: %s", statuses(res))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout did not stop the step: the run took %s", d)
	}
}

func TestCancelStopsStepsAndRunsCleanup(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithCancelCause(context.Background())
	rec := &recorder{}
	started := make(chan struct{})
	sink := SinkFunc(func(e Event) {
		rec.Handle(e)
		if e.Type == StepStarted && e.Step == "long" {
			close(started)
		}
	})
	go func() { <-started; cancel(errors.New("interrupted")) }()
	g := compile(t, `
steps:
  - {name: long, run: block}
  - {name: next, run: echo no}
  - {name: fail-handler, when: {status: failure}, run: echo no}
  - {name: cleanup, when: {status: always}, run: echo cleaning}
`)
	res, err := (&Engine{Backend: f, Parallel: 2}).Run(ctx, Job{Graph: g, Workspace: t.TempDir(), Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	want := "long=cancelled next=skipped fail-handler=skipped cleanup=success"
	if res.Status != Cancelled || statuses(res) != want {
		t.Fatalf("run %s: %s; want cancelled: %s", res.Status, statuses(res), want)
	}
	if got := result(t, res, "long").Reason; got != "interrupted" {
		t.Errorf("cancel reason %q, want the cause", got)
	}
	if got := rec.logs("cleanup"); len(got) != 1 || got[0] != "cleaning" {
		t.Errorf("cleanup printed %q", got)
	}
}

func TestWhenConditions(t *testing.T) {
	yml := `
steps:
  - {name: main-only, needs: [], when: {branch: main}, run: echo m}
  - {name: releases, needs: [], when: {branch: "release/*"}, run: echo r}
  - {name: tags, needs: [], when: {event: tag}, run: echo t}
  - {name: go-files, needs: [], when: {path: "**/*.go"}, run: echo g}
  - {name: after-skipped, run: echo runs}
`
	res, _ := runJob(t, newFake(), 2, yml, func(j *Job) {
		j.Trigger = pipeline.Trigger{Branch: "release/1.2", Event: "push", Changed: []string{"docs/a.md", "cmd/x/main.go"}, ChangedKnown: true}
	})
	want := "main-only=skipped releases=success tags=skipped go-files=success after-skipped=success"
	if got := statuses(res); got != want || res.Status != Success {
		t.Errorf("got %s (%s)\nwant %s", got, res.Status, want)
	}
	if got := result(t, res, "main-only").Reason; got != `branch "release/1.2" does not match when.branch` {
		t.Errorf("skip reason %q", got)
	}
	res, _ = runJob(t, newFake(), 2, yml, func(j *Job) {
		j.Trigger = pipeline.Trigger{Branch: "main", Event: "push", Changed: []string{"README.md"}, ChangedKnown: true}
	})
	if got := result(t, res, "go-files").Status; got != Skipped {
		t.Errorf("go-files ran with only README.md changed: %s", got)
	}
}

func TestEnvironment(t *testing.T) {
	res, rec := runJob(t, newFake(), 1, `
env:
  GREETING: hello
  WHO: "${USER_NAME}-${DROVER_BRANCH}"
  LITERAL: "$${NOT_EXPANDED}"
steps:
  - name: show
    env: {GREETING: "${GREETING} world", ONLY_STEP: yes}
    matrix: {ARCH: [arm64]}
    run: env GREETING; env WHO; env LITERAL; env ONLY_STEP; env ARCH; env DROVER_STEP; env DROVER_RUN; env DROVER; env FROM_CLI; env DROVER_BRANCH
`, func(j *Job) {
		j.BaseEnv = []string{"USER_NAME=ada", "DROVER_BRANCH=fake"}
		j.Overrides = []string{"FROM_CLI=over", "DROVER_RUN=999"}
	})
	if res.Status != Success {
		t.Fatal(statuses(res))
	}
	want := []string{"GREETING=hello world", "WHO=ada-main", "LITERAL=${NOT_EXPANDED}", "ONLY_STEP=yes",
		"ARCH=arm64", "DROVER_STEP=show (ARCH=arm64)", "DROVER_RUN=7", "DROVER=true", "FROM_CLI=over", "DROVER_BRANCH=main"}
	if got := rec.logs("show (ARCH=arm64)"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("environment\n got %q\nwant %q", got, want)
	}
}

func TestFailedJUnitReportFailsTheStep(t *testing.T) {
	junit := `<testsuite name="pkg"><testcase classname="pkg" name="TestOK"/><testcase classname="pkg" name="TestBad"><failure message="want 2, got 3">trace</failure></testcase></testsuite>`
	res, rec := runJob(t, newFake(), 1, `
steps:
  - name: test
    run: write reports/unit.xml `+junit+`
    reports: {junit: "reports/*.xml"}
  - name: tolerant
    run: write reports2/unit.xml `+junit+`
    reports: {junit: "reports2/*.xml"}
    gates: {failures: 1}
`, nil)
	s := result(t, res, "test")
	if s.Status != Failure || s.Reports == nil || s.Reports.Tests == nil || s.Reports.Tests.Failed != 1 || s.Reports.Tests.Passed != 1 {
		t.Fatalf("test: %s %+v", s.Status, s.Reports)
	}
	if !strings.Contains(s.Reason, "1") || !strings.Contains(rec.notes("test"), "tests: 1 passed, 1 failed, 0 skipped") {
		t.Errorf("reason %q, notes %q", s.Reason, rec.notes("test"))
	}
	if got := result(t, res, "tolerant").Status; got != Skipped {
		// It comes after a failed step; check the gate on its own below.
		t.Errorf("tolerant: %s", got)
	}
	res, _ = runJob(t, newFake(), 1, `
steps:
  - name: tolerant
    run: write r/unit.xml `+junit+`
    reports: {junit: "r/*.xml"}
    gates: {failures: 1}
`, nil)
	if got := result(t, res, "tolerant").Status; got != Success {
		t.Errorf("gates.failures: 1 with one failed test: %s (%s)", got, result(t, res, "tolerant").Reason)
	}
}

func TestCoverageGate(t *testing.T) {
	profile := "mode: set\\nx.go:1.1,2.2 3 1\\nx.go:3.1,4.2 1 0\\n"
	_ = profile
	res, _ := runJob(t, newFake(), 1, `
steps:
  - name: test
    run: echo
    reports: {coverage: cover.out}
    gates: {coverage: 80}
`, func(j *Job) {
		os.WriteFile(filepath.Join(j.Workspace, "cover.out"), []byte("mode: set\nx.go:1.1,2.2 3 1\nx.go:3.1,4.2 1 0\n"), 0o644)
	})
	s := result(t, res, "test")
	if s.Status != Failure || s.Reports.Coverage == nil || s.Reports.Coverage.Percent() != 75 {
		t.Fatalf("test: %s %q %+v", s.Status, s.Reason, s.Reports)
	}
	if !strings.Contains(s.Reason, "75") || !strings.Contains(s.Reason, "80") {
		t.Errorf("the reason %q must name the figure and the threshold", s.Reason)
	}
}

func TestArtifactsAreContentAddressed(t *testing.T) {
	yml := `
steps:
  - name: build
    run: write dist/app binary-bytes
    artifacts: [dist/]
`
	var digests []string
	for range 2 {
		res, _ := runJob(t, newFake(), 1, yml, func(j *Job) {
			store, err := artifact.Open(filepath.Join(j.Workspace, ".drover", "artifacts"))
			if err != nil {
				t.Fatal(err)
			}
			j.Artifacts = store
		})
		s := result(t, res, "build")
		if s.Status != Success || len(s.Artifacts) != 1 || res.Artifact == nil {
			t.Fatalf("build: %s %q artifacts %v", s.Status, s.Reason, s.Artifacts)
		}
		digests = append(digests, s.Artifacts[0].Digest.String()+" "+res.Artifact.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("the same content gave different digests: %v", digests)
	}
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: build, run: echo nothing, artifacts: [missing/]}
`, func(j *Job) {
		j.Artifacts, _ = artifact.Open(filepath.Join(j.Workspace, ".drover", "artifacts"))
	})
	if s := result(t, res, "build"); s.Status != Failure || !strings.Contains(s.Reason, "missing") {
		t.Errorf("missing artifact: %s %q", s.Status, s.Reason)
	}
}

func TestServerOnlyStepsAreSkippedWithAReason(t *testing.T) {
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: build, run: echo ok}
  - {name: staging, deploy: staging}
  - {name: go-live, approval: {role: release-manager}}
  - {name: after, run: echo still runs}
`, nil)
	if res.Status != Success {
		t.Fatalf("run %s: %s", res.Status, statuses(res))
	}
	for _, name := range []string{"staging", "go-live"} {
		s := result(t, res, name)
		if s.Status != Skipped || !strings.Contains(s.Reason, "server") {
			t.Errorf("%s: %s %q", name, s.Status, s.Reason)
		}
	}
	if result(t, res, "after").Status != Success {
		t.Error("a step after skipped server-only steps did not run")
	}
}

func TestEventsArriveInOrder(t *testing.T) {
	_, rec := runJob(t, newFake(), 2, `
steps:
  - {name: a, run: echo one; echo two}
  - {name: b, needs: [], run: echo three}
`, nil)
	if rec.events[0].Type != RunStarted || rec.events[len(rec.events)-1].Type != RunFinished {
		t.Fatal("run events do not frame the others")
	}
	phase := map[string]EventType{}
	for _, e := range rec.events[1 : len(rec.events)-1] {
		if e.Type < phase[e.Step] && !(e.Type == StepNote) {
			t.Errorf("event %v of %s came after %v", e.Type, e.Step, phase[e.Step])
		}
		phase[e.Step] = max(phase[e.Step], e.Type)
	}
	if got := rec.logs("a"); strings.Join(got, ",") != "one,two" {
		t.Errorf("a's lines: %q", got)
	}
}

func TestDoneStepsKeepTheirResults(t *testing.T) {
	f := newFake()
	kept := &StepResult{Name: "test", Status: Success, ExitCode: 0, Attempts: 1}
	res, rec := runJob(t, f, 1, `
steps:
  - {name: test, run: echo must not run}
  - {name: build, run: echo built}
`, func(j *Job) { j.Done = map[string]*StepResult{"test": kept} })
	if res.Status != Success || result(t, res, "test") != kept {
		t.Fatalf("run %s: %s", res.Status, statuses(res))
	}
	if len(rec.logs("test")) != 0 || len(rec.logs("build")) != 1 {
		t.Errorf("test ran again or build did not: %q %q", rec.logs("test"), rec.logs("build"))
	}
}

// A built image is handed to Job.AnnotateImage with the tags it was pushed under; what
// that returns is the image later steps run in and the release names. A failure to
// annotate fails the build step.
func TestBuiltImagesAreAnnotated(t *testing.T) {
	yml := `
steps:
  - {name: image, build: {context: ., tags: [latest]}}
  - {name: inside, needs: [image], image: self, run: self}
`
	var gotRef string
	var gotTags []string
	res, rec := runJob(t, newFake(), 1, yml, func(j *Job) {
		j.ImageRepo = "shop/image"
		j.Artifacts, _ = artifact.Open(filepath.Join(j.Workspace, ".drover", "artifacts"))
		j.AnnotateImage = func(_ context.Context, ref string, tags []string) (string, error) {
			gotRef, gotTags = ref, tags
			return "shop/image@sha256:annotated", nil
		}
	})
	if res.Status != Success || gotRef != "shop/image@sha256:pushed" || strings.Join(gotTags, " ") != "7 latest" {
		t.Fatalf("%s; annotated %q with tags %v", statuses(res), gotRef, gotTags)
	}
	if logs := rec.logs("inside"); len(logs) != 1 || logs[0] != "shop/image@sha256:annotated" {
		t.Errorf("image: self ran in %v, want the annotated image", logs)
	}
	if img := result(t, res, "image").Image; img != "shop/image@sha256:annotated" {
		t.Errorf("the step's image: %q", img)
	}

	res, _ = runJob(t, newFake(), 1, yml, func(j *Job) {
		j.ImageRepo = "shop/image"
		j.AnnotateImage = func(context.Context, string, []string) (string, error) {
			return "", errors.New("registry full")
		}
	})
	if s := result(t, res, "image"); s.Status != Errored || !strings.Contains(s.Reason, "registry full") || statuses(res) != "image=error inside=skipped" {
		t.Errorf("a failed annotation: %s %q", statuses(res), s.Reason)
	}
}

// An image pushed before the run was cancelled is still annotated: retention finds
// registry images by their annotations.
func TestAnImagePushedBeforeACancelIsAnnotated(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	annotated := ""
	job := Job{Graph: compile(t, "steps:\n  - {name: image, build: {context: ., tags: [block]}}\n"), Workspace: t.TempDir(),
		Vars: Vars{Run: 3}, ImageRepo: "shop/image",
		Sink: SinkFunc(func(e Event) {
			if e.Type == StepStarted {
				cancel()
			}
		}),
		AnnotateImage: func(actx context.Context, ref string, _ []string) (string, error) {
			if actx.Err() != nil {
				return "", actx.Err()
			}
			annotated = ref
			return "shop/image@sha256:annotated", nil
		}}
	res, err := (&Engine{Backend: newFake()}).Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != Cancelled || annotated != "shop/image@sha256:pushed" {
		t.Errorf("run %s, annotated %q; want cancelled with the pushed image annotated", res.Status, annotated)
	}
}

// A script that exits non-zero with failed tests in its report fails for its tests.
func TestFailedTestsAreTheReason(t *testing.T) {
	junit := `<testsuite name="pkg"><testcase classname="pkg" name="TestA"><failure message="Failed">    a_test.go:9: got 3, want 4</failure></testcase><testcase classname="pkg" name="TestB"><failure/></testcase></testsuite>`
	res, _ := runJob(t, newFake(), 1, `
steps:
  - name: test
    run: 'write unit.xml `+junit+`; exit 1'
    reports: {junit: unit.xml}
`, nil)
	s := result(t, res, "test")
	if s.Reason != "2 tests failed" || s.Reports.Tests.Failures[0].Message != "a_test.go:9: got 3, want 4" {
		t.Errorf("reason %q, first failure %+v", s.Reason, s.Reports.Tests.Failures[0])
	}
}
