package console

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/report"
)

var (
	summaryStart = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	distDigest   = digest.Digest("sha256:" + strings.Repeat("a1", 32))
	runDigest    = digest.Digest("sha256:" + strings.Repeat("f0", 32))
)

func ran(d time.Duration) (started, finished time.Time) {
	return summaryStart, summaryStart.Add(d)
}

// successRun is a run that published an artifact, with one step of each kind of detail.
func successRun() *engine.RunResult {
	build := &engine.StepResult{Name: "build", Status: engine.Success, Attempts: 1,
		Artifacts: []ocispec.Descriptor{{
			MediaType:   ocispec.MediaTypeImageLayerGzip,
			Digest:      distDigest,
			Size:        2048,
			Annotations: map[string]string{ocispec.AnnotationTitle: "dist/app"},
		}}}
	build.Started, build.Finished = ran(1500 * time.Millisecond)
	test := &engine.StepResult{Name: "test (GOARCH=arm64)", Status: engine.Success, Attempts: 1,
		Reports: &report.Summary{
			Tests:    &report.Tests{Passed: 41, Failed: 0, Skipped: 2},
			Coverage: &report.Coverage{Covered: 723, Total: 1000, Format: "go"},
		}}
	test.Started, test.Finished = ran(12340 * time.Millisecond)
	lint := &engine.StepResult{Name: "lint", Status: engine.Failure, Allowed: true,
		Reason: "exit code 1", ExitCode: 1, Attempts: 3}
	lint.Started, lint.Finished = ran(250 * time.Millisecond)
	deploy := &engine.StepResult{Name: "deploy", Status: engine.Skipped, Reason: "branch is not main"}
	return &engine.RunResult{
		Status:   engine.Success,
		Steps:    []*engine.StepResult{build, test, lint, deploy},
		Started:  summaryStart,
		Finished: summaryStart.Add(3 * time.Second),
		Artifact: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: runDigest, Size: 512},
	}
}

// failureRun is a run that failed and published nothing.
func failureRun() *engine.RunResult {
	e2e := &engine.StepResult{Name: "e2e", Status: engine.Failure, Reason: "timed out after 10m0s",
		ExitCode: -1, Attempts: 2}
	e2e.Started, e2e.Finished = ran(10 * time.Minute)
	return &engine.RunResult{
		Status:   engine.Failure,
		Steps:    []*engine.StepResult{e2e},
		Started:  summaryStart,
		Finished: summaryStart.Add(10*time.Minute + 5*time.Second),
	}
}

func summary(t *testing.T, res *engine.RunResult, color bool) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Summary(&buf, res, color); err != nil {
		t.Fatalf("Summary: %v", err)
	}
	return buf.String()
}

// table reads the summary's table back: the cells of each row, cut at the columns where
// the header's titles start, so a row that does not line up with the header reads wrong.
func table(t *testing.T, out string) [][]string {
	t.Helper()
	ls := strings.Split(out, "\n")
	h := slices.IndexFunc(ls, func(l string) bool { return strings.HasPrefix(l, "STEP") })
	if h < 0 {
		t.Fatalf("no header line in %q", out)
	}
	header := []rune(ls[h])
	if got := strings.Fields(string(header)); !slices.Equal(got, []string{"STEP", "STATUS", "DURATION", "DETAILS"}) {
		t.Fatalf("header = %q, want STEP STATUS DURATION DETAILS", got)
	}
	var starts []int
	for _, title := range []string{"STEP", "STATUS", "DURATION", "DETAILS"} {
		starts = append(starts, len([]rune(string(header)[:strings.Index(string(header), title)])))
	}
	var rows [][]string
	for _, l := range ls[h+1:] {
		if l == "" {
			break
		}
		r := []rune(l)
		var cells []string
		for i, s := range starts {
			end := len(r)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(r))
			}
			if s > len(r) {
				cells = append(cells, "")
				continue
			}
			if s > 0 && r[s-1] != ' ' {
				t.Errorf("row %q: column %d does not start at offset %d, under the header", l, i+1, s)
			}
			cells = append(cells, strings.TrimSpace(string(r[s:end])))
		}
		rows = append(rows, cells)
	}
	return rows
}

func TestSummaryTable(t *testing.T) {
	tests := []struct {
		name    string
		res     *engine.RunResult
		rows    [][]string
		verdict string
	}{
		{
			name: "success with artifact",
			res:  successRun(),
			rows: [][]string{
				{"build", "success", "1.5s", "dist/app " + string(distDigest)},
				{"test (GOARCH=arm64)", "success", "12.34s", "tests 41 passed, 0 failed, 2 skipped · coverage 72.3%"},
				{"lint", "failure (allowed)", "250ms", "exit code 1 · 3 attempts"},
				{"deploy", "skipped", "-", "branch is not main"},
			},
			verdict: "run success in 3s · artifact " + string(runDigest),
		},
		{
			name: "failure without artifact",
			res:  failureRun(),
			rows: [][]string{
				{"e2e", "failure", "10m0s", "timed out after 10m0s · 2 attempts"},
			},
			verdict: "run failure in 10m5s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := summary(t, tt.res, false)
			if strings.Contains(out, "\x1b") {
				t.Errorf("color=false summary has escape codes: %q", out)
			}
			rows := table(t, out)
			if len(rows) != len(tt.rows) {
				t.Fatalf("%d rows, want %d:\n%s", len(rows), len(tt.rows), out)
			}
			for i, want := range tt.rows {
				if !slices.Equal(rows[i], want) {
					t.Errorf("row %d = %q, want %q", i+1, rows[i], want)
				}
			}
			// The verdict is the last line, set apart from the table by an empty line.
			if !strings.HasSuffix(out, "\n\n"+tt.verdict+"\n") {
				t.Errorf("summary does not end with verdict %q:\n%s", tt.verdict, out)
			}
		})
	}
}

func TestSummaryColor(t *testing.T) {
	tests := []struct {
		name  string
		res   *engine.RunResult
		codes []*regexp.Regexp // expected in the coloured output
	}{
		{
			name: "success",
			res:  successRun(),
			codes: []*regexp.Regexp{
				regexp.MustCompile(`\x1b\[32msuccess\x1b\[0m`),
				regexp.MustCompile(`\x1b\[33mfailure \(allowed\)\x1b\[0m`),
				regexp.MustCompile(`\x1b\[33mskipped\x1b\[0m`),
				regexp.MustCompile(`\x1b\[32m\n?run success in 3s`),
			},
		},
		{
			name: "failure",
			res:  failureRun(),
			codes: []*regexp.Regexp{
				regexp.MustCompile(`\x1b\[31mfailure\x1b\[0m`),
				regexp.MustCompile(`\x1b\[31m\n?run failure in 10m5s`),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			colored := summary(t, tt.res, true)
			for _, re := range tt.codes {
				if !re.MatchString(colored) {
					t.Errorf("coloured summary does not match %q:\n%q", re, colored)
				}
			}
			// Colour must not move the columns: without its codes the coloured table is
			// the plain one.
			plain := summary(t, tt.res, false)
			if got := ansi.ReplaceAllString(colored, ""); got != plain {
				t.Errorf("coloured summary, codes removed, differs from the plain one:\n--- got\n%s--- want\n%s", got, plain)
			}
		})
	}
}
