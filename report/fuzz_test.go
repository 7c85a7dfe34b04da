package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// addFixtures seeds f with every file in testdata/<dir>.
func addFixtures(f *testing.F, dir string) {
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzParseJUnit(f *testing.F) {
	addFixtures(f, "junit")
	f.Add([]byte(`<testsuite><testcase><failure>` + "\xff\xfe" + `</failure></testcase></testsuite>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseJUnit(bytes.NewReader(data))
		if err != nil {
			return
		}
		if got.Passed < 0 || got.Failed < 0 || got.Skipped < 0 || got.Duration < 0 {
			t.Fatalf("negative figure: %+v", got)
		}
		if len(got.Failures) != got.Failed {
			t.Fatalf("%d failures recorded for %d failed tests", len(got.Failures), got.Failed)
		}
		for _, fl := range got.Failures {
			if len(fl.Detail) > maxDetail {
				t.Fatalf("Detail is %d bytes, over the cap", len(fl.Detail))
			}
		}
	})
}

func FuzzParseCoverage(f *testing.F) {
	addFixtures(f, "coverage")
	f.Add([]byte("mode: set\na.go:1.1,2.2 3 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseCoverage(bytes.NewReader(data))
		if err != nil {
			return
		}
		if got.Covered < 0 || got.Covered > got.Total {
			t.Fatalf("covered %d of %d", got.Covered, got.Total)
		}
		if p := got.Percent(); p < 0 || p > 100 {
			t.Fatalf("Percent() = %v", p)
		}
		if got.Format != "go" && got.Format != "cobertura" {
			t.Fatalf("Format = %q", got.Format)
		}
	})
}
