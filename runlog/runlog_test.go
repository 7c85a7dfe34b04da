package runlog

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/report"
)

func create(t *testing.T, root string) *Dir {
	t.Helper()
	d, err := Create(root)
	if err != nil {
		t.Fatalf("Create(%s): %v", root, err)
	}
	return d
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestCreateNumbersRuns(t *testing.T) {
	root := filepath.Join(t.TempDir(), ".drover", "runs") // does not exist yet
	for want := 1; want <= 3; want++ {
		d := create(t, root)
		if d.Number != want {
			t.Errorf("run %d: Number = %d", want, d.Number)
		}
		if wantPath := filepath.Join(root, strconv.Itoa(want)); d.Path != wantPath {
			t.Errorf("run %d: Path = %q, want %q", want, d.Path, wantPath)
		}
		if fi, err := os.Stat(d.Path); err != nil || !fi.IsDir() {
			t.Errorf("run %d: %s is not a folder: %v", want, d.Path, err)
		}
	}
	if got, want := dirNames(t, root), []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("runs folder holds %q, want %q", got, want)
	}
}

func TestCreateSkipsExistingNumbers(t *testing.T) {
	tests := []struct {
		name     string
		folders  []string // made before Create
		files    []string // made before Create
		wantNext int
	}{
		{name: "empty", wantNext: 1},
		{name: "after the highest", folders: []string{"1", "2", "5"}, wantNext: 6},
		{name: "gap below is not reused", folders: []string{"3"}, wantNext: 4},
		{name: "non-numeric entries ignored", folders: []string{"2", "latest", "10-old", "tmp"}, files: []string{"99.txt", "notes"}, wantNext: 3},
		{name: "only non-numeric entries", folders: []string{"latest"}, files: []string{"run.json"}, wantNext: 1},
		{name: "a file with a run's number is skipped", files: []string{"1"}, wantNext: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tt.folders {
				if err := os.Mkdir(filepath.Join(root, f), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d := create(t, root)
			if d.Number != tt.wantNext {
				t.Errorf("Number = %d, want %d", d.Number, tt.wantNext)
			}
			if fi, err := os.Stat(filepath.Join(root, strconv.Itoa(tt.wantNext))); err != nil || !fi.IsDir() {
				t.Errorf("run folder %d not made: %v", tt.wantNext, err)
			}
		})
	}
}

func TestCreateConcurrent(t *testing.T) {
	const n = 8
	// Several rounds, each goroutine released at once, so that some of them read the
	// folder before another's Mkdir and must move on to the next number.
	for round := range 10 {
		root := t.TempDir()
		numbers := make([]int, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				d, err := Create(root)
				errs[i] = err
				if err == nil {
					numbers[i] = d.Number
				}
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Create #%d: %v", round, i, err)
			}
		}
		slices.Sort(numbers)
		if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(numbers, want) {
			t.Fatalf("round %d: concurrent runs got numbers %v, want %v: each run its own", round, numbers, want)
		}
	}
}

func TestCreateRootIsAFile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "runs")
	if err := os.WriteFile(root, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(root); err == nil || !strings.Contains(err.Error(), root) {
		t.Errorf("Create on a file: err = %v, want an error naming %s", err, root)
	}
}

// logLine is one parsed line of a step log.
type logLine struct {
	time time.Time
	text string
}

// readLog reads a step log, checking that every line starts with an RFC 3339 UTC
// timestamp with milliseconds.
func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		stamp, text, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("%s: line %q has no timestamp", filepath.Base(path), sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("%s: timestamp %q: %v", filepath.Base(path), stamp, err)
		}
		// 2025-03-04T05:06:07.890Z: UTC and exactly three fractional digits.
		if len(stamp) != len("2006-01-02T15:04:05.000Z") || !strings.HasSuffix(stamp, "Z") {
			t.Errorf("%s: timestamp %q is not RFC 3339 UTC with milliseconds", filepath.Base(path), stamp)
		}
		lines = append(lines, logLine{ts, text})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestHandleWritesStepLogs(t *testing.T) {
	d := create(t, t.TempDir())

	// A zone other than UTC and nanoseconds: the log must show UTC, cut to milliseconds.
	t0 := time.Date(2025, 3, 4, 6, 6, 7, 890_123_456, time.FixedZone("CET", 3600))
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const matrixStep = "test (GOARCH=arm64)"
	nodes := []*pipeline.Node{{Name: matrixStep}, {Name: "build"}, {Name: "deploy"}}
	events := []engine.Event{
		{Type: engine.RunStarted, Time: at(0), Nodes: nodes},
		{Type: engine.StepStarted, Time: at(1), Step: matrixStep, Attempt: 1},
		{Type: engine.StepStarted, Time: at(2), Step: "build", Attempt: 1},
		{Type: engine.StepLog, Time: at(3), Step: matrixStep, Attempt: 1, Line: "=== RUN   TestA"},
		{Type: engine.StepLog, Time: at(4), Step: "build", Attempt: 1, Line: "compiling"},
		{Type: engine.StepNote, Time: at(5), Step: matrixStep, Attempt: 1, Line: "retrying after exit code 1"},
		{Type: engine.StepStarted, Time: at(6), Step: matrixStep, Attempt: 2},
		{Type: engine.StepLog, Time: at(1007), Step: matrixStep, Attempt: 2, Line: "--- PASS: TestA (0.00s)"},
		{Type: engine.StepFinished, Time: at(1008), Step: matrixStep, Result: &engine.StepResult{
			Name: matrixStep, Status: engine.Success, Attempts: 2}},
		{Type: engine.StepFinished, Time: at(1009), Step: "build", Result: &engine.StepResult{
			Name: "build", Status: engine.Failure, Reason: "exit code 2", ExitCode: 2, Attempts: 1}},
		// deploy never started: skipped steps get no log file.
		{Type: engine.StepFinished, Time: at(1010), Step: "deploy", Result: &engine.StepResult{
			Name: "deploy", Status: engine.Skipped, Reason: "a step it needs failed"}},
	}
	for _, e := range events {
		d.Handle(e)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	wantFiles := []string{"01-test__GOARCH_arm64_.log", "02-build.log"}
	if got := dirNames(t, d.Path); !slices.Equal(got, wantFiles) {
		t.Fatalf("run folder holds %q, want %q", got, wantFiles)
	}
	if got, want := d.LogFile(matrixStep), filepath.Join(d.Path, wantFiles[0]); got != want {
		t.Errorf("LogFile(%q) = %q, want %q", matrixStep, got, want)
	}

	tests := []struct {
		step string
		want []logLine
	}{
		{matrixStep, []logLine{
			{at(1), "drover: attempt 1 started"},
			{at(3), "=== RUN   TestA"},
			{at(5), "drover: retrying after exit code 1"},
			{at(6), "drover: attempt 2 started"},
			{at(1007), "--- PASS: TestA (0.00s)"},
			{at(1008), "drover: success"},
		}},
		{"build", []logLine{
			{at(2), "drover: attempt 1 started"},
			{at(4), "compiling"},
			{at(1009), "drover: failure exit code 2"},
		}},
	}
	for _, tt := range tests {
		got := readLog(t, d.LogFile(tt.step))
		if len(got) != len(tt.want) {
			t.Errorf("%s: %d lines, want %d: %v", tt.step, len(got), len(tt.want), got)
			continue
		}
		for i, w := range tt.want {
			wantTime := w.time.UTC().Truncate(time.Millisecond)
			if !got[i].time.Equal(wantTime) {
				t.Errorf("%s line %d: time %s, want %s", tt.step, i+1, got[i].time, wantTime)
			}
			// The outcome line of a step without a reason may end in a space.
			if strings.TrimRight(got[i].text, " ") != w.text {
				t.Errorf("%s line %d: %q, want %q", tt.step, i+1, got[i].text, w.text)
			}
		}
	}
}

func TestCloseFlushesOpenLogs(t *testing.T) {
	d := create(t, t.TempDir())
	now := time.Now()
	d.Handle(engine.Event{Type: engine.RunStarted, Time: now, Nodes: []*pipeline.Node{{Name: "serve"}}})
	d.Handle(engine.Event{Type: engine.StepStarted, Time: now, Step: "serve", Attempt: 1})
	d.Handle(engine.Event{Type: engine.StepLog, Time: now, Step: "serve", Attempt: 1, Line: "listening on :8080"})
	// The run is cancelled: no StepFinished.
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := readLog(t, d.LogFile("serve"))
	if len(lines) != 2 || lines[1].text != "listening on :8080" {
		t.Errorf("log after Close = %v, want the started line and the step's line", lines)
	}
}

func TestWriteResult(t *testing.T) {
	d := create(t, t.TempDir())
	start := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	rec := Record{
		Number:   d.Number,
		Status:   engine.Failure,
		Started:  start,
		Finished: start.Add(90 * time.Second),
		Branch:   "main",
		Commit:   "0123456789abcdef0123456789abcdef01234567",
		Artifact: "sha256:" + strings.Repeat("ab", 32),
		Steps: []*engine.StepResult{
			{
				Name: "test", Status: engine.Success, Attempts: 1,
				Started: start, Finished: start.Add(time.Minute),
				Reports: &report.Summary{
					Tests:    &report.Tests{Passed: 10, Failed: 1, Skipped: 2, Duration: 3 * time.Second},
					Coverage: &report.Coverage{Covered: 70, Total: 100, Format: "go"},
					Files:    []string{"junit.xml"},
				},
				Artifacts: []ocispec.Descriptor{{
					MediaType:   ocispec.MediaTypeImageLayerGzip,
					Digest:      digest.Digest("sha256:" + strings.Repeat("cd", 32)),
					Size:        1234,
					Annotations: map[string]string{ocispec.AnnotationTitle: "dist"},
				}},
			},
			{Name: "lint", Status: engine.Failure, Reason: "exit code 1", ExitCode: 1, Attempts: 1,
				Started: start, Finished: start.Add(2 * time.Second)},
			{Name: "deploy", Status: engine.Skipped, Reason: "a step it needs failed"},
		},
	}
	if err := d.WriteResult(rec); err != nil {
		t.Fatalf("WriteResult: %v", err)
	}
	path := filepath.Join(d.Path, "run.json")
	if got := readRecord(t, path); !reflect.DeepEqual(got, rec) {
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(rec)
		t.Errorf("run.json does not round-trip:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if got := dirNames(t, d.Path); !slices.Equal(got, []string{"run.json"}) {
		t.Errorf("run folder holds %q, want only run.json (no temp files)", got)
	}

	// A second write replaces the first.
	rec.Status = engine.Success
	rec.Steps = rec.Steps[:1]
	if err := d.WriteResult(rec); err != nil {
		t.Fatalf("second WriteResult: %v", err)
	}
	got := readRecord(t, path)
	if got.Status != engine.Success || len(got.Steps) != 1 {
		t.Errorf("after rewrite: status %q with %d steps, want success with 1", got.Status, len(got.Steps))
	}
	if got := dirNames(t, d.Path); !slices.Equal(got, []string{"run.json"}) {
		t.Errorf("run folder holds %q after rewrite, want only run.json", got)
	}
}

func readRecord(t *testing.T, path string) Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatalf("%s is not valid JSON:\n%s", path, data)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return rec
}
