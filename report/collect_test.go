package report

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// workspace builds a temporary workspace holding files copied from testdata
// (name -> testdata path) or given literally (name -> "=content").
func workspace(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		var data []byte
		if content, ok := strings.CutPrefix(src, "="); ok {
			data = []byte(content)
		} else {
			var err error
			if data, err = os.ReadFile(filepath.Join("testdata", src)); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCollect(t *testing.T) {
	dir := workspace(t, map[string]string{
		"reports/unit/go.xml":       "junit/go-junit-report.xml",
		"reports/unit/surefire.xml": "junit/surefire.xml",
		"reports/jest.xml":          "junit/jest.xml",
		"reports/notes.txt":         "=not a report",
		"cover.out":                 "coverage/go.out",
	})
	if err := os.Mkdir(filepath.Join(dir, "reports", "dir.xml"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The second pattern overlaps the first; files are read once, in sorted order.
	s, warnings, err := Collect(dir, []string{"reports/*/*.xml", "./reports/unit/go.xml", "reports/*.xml", "build/**/*.xml"}, "cover.out")
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if want := []string{`junit pattern "build/**/*.xml" matched no files`}; !slices.Equal(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}
	wantFiles := []string{"cover.out", "reports/jest.xml", "reports/unit/go.xml", "reports/unit/surefire.xml"}
	if !slices.Equal(s.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", s.Files, wantFiles)
	}
	if s.Tests == nil || s.Coverage == nil {
		t.Fatalf("Summary = %+v, want tests and coverage", s)
	}
	// jest 3/1/1 + go-junit-report 3/3/1 + surefire 3/2/1
	if s.Tests.Passed != 9 || s.Tests.Failed != 6 || s.Tests.Skipped != 3 {
		t.Errorf("tests = %d/%d/%d, want 9/6/3", s.Tests.Passed, s.Tests.Failed, s.Tests.Skipped)
	}
	var got []string
	for _, f := range s.Tests.Failures {
		got = append(got, f.File+" "+f.Name)
	}
	want := []string{
		"reports/jest.xml PipelineList shows the last run status",
		"reports/unit/go.xml TestRunStep/timeout",
		"reports/unit/go.xml TestParse/matrix",
		"reports/unit/go.xml [build failed]",
		"reports/unit/surefire.xml streamsLogs",
		"reports/unit/surefire.xml loadsConfig",
	}
	if !slices.Equal(got, want) {
		t.Errorf("failures = %q, want %q", got, want)
	}
	if *s.Coverage != (Coverage{Covered: 13, Total: 15, Format: "go"}) {
		t.Errorf("coverage = %+v", *s.Coverage)
	}
}

func TestCollectNothingFound(t *testing.T) {
	dir := workspace(t, map[string]string{"README": "=hi"})
	s, warnings, err := Collect(dir, []string{"*.xml"}, "coverage.xml")
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if s.Tests != nil || s.Coverage != nil || len(s.Files) != 0 {
		t.Errorf("Summary = %+v, want it empty", s)
	}
	want := []string{`junit pattern "*.xml" matched no files`, `coverage report "coverage.xml" not found`}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}
	if err := Check(Gates{Coverage: ptr(50.0)}, s); err == nil || !strings.Contains(err.Error(), "no coverage report was found") {
		t.Errorf("Check = %v, want the missing coverage report to fail the gate", err)
	}
}

func TestCollectBrokenFiles(t *testing.T) {
	dir := workspace(t, map[string]string{
		"a.xml":    "junit/pytest.xml",
		"b.xml":    `=<testsuite><testcase name="x">`,
		"c.xml":    "=<html></html>",
		"cov.xml":  `=<coverage line-rate="0.5"/>`,
		"good.xml": "junit/pytest-legacy.xml",
	})
	s, _, err := Collect(dir, []string{"*.xml"}, "cov.xml")
	if err == nil {
		t.Fatal("Collect succeeded, want errors for the broken files")
	}
	msg := err.Error()
	for _, want := range []string{
		"report: b.xml: parsing JUnit XML: XML syntax error",
		"report: c.xml: parsing JUnit XML: not a JUnit report: root element is <html>",
		"report: cov.xml: parsing JUnit XML",
		"report: cov.xml: parsing coverage: no line data",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	// The good files are still summarised.
	if s.Tests == nil || s.Tests.Total() != 9 || !slices.Equal(s.Files, []string{"a.xml", "good.xml"}) {
		t.Errorf("Summary = %+v, tests %+v", s, s.Tests)
	}
}

func TestCollectRejectsEscapes(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.xml"), []byte("<testsuite/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := workspace(t, map[string]string{"ok.xml": "junit/jest.xml"})
	if err := os.Symlink(filepath.Join(outside, "secret.xml"), filepath.Join(dir, "link.xml")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		junit    []string
		coverage string
		want     string
	}{
		{"absolute pattern", []string{filepath.Join(outside, "*.xml")}, "", "is absolute"},
		{"dotdot pattern", []string{"../*/secret.xml"}, "", "leaves the workspace"},
		{"dotdot after a directory", []string{"reports/../../x.xml"}, "", "leaves the workspace"},
		{"absolute coverage", nil, "/etc/passwd", "is absolute"},
		{"dotdot coverage", nil, "../cover.out", "leaves the workspace"},
		{"empty pattern", []string{""}, "", "empty path"},
		{"bad pattern", []string{"[x.xml"}, "", "syntax error in pattern"},
		{"symlink out of the workspace", []string{"*.xml"}, "", "link.xml: path escapes from parent"},
		{"named symlink out of the workspace", []string{"link.xml"}, "", "link.xml: path escapes from parent"},
		{"coverage symlink out of the workspace", nil, "link.xml", "link.xml: path escapes from parent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Collect(dir, tt.junit, tt.coverage)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Collect = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, _, err := Collect(filepath.Join(dir, "missing"), nil, ""); err == nil {
		t.Error("Collect of a missing workspace succeeded")
	}
}

// A named pipe where a report should be (a step's leftover process can put one there) is
// an error at once, not an open that waits for ever and holds the run (found in review).
func TestCollectRefusesANamedPipe(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "cover.out"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := Collect(dir, nil, "cover.out")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Collect with a pipe for coverage: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Collect blocked on a named pipe")
	}
}
