package pipeline

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// describe renders a compiled graph: each node with what it needs and its key settings.
func describe(g *Graph) string {
	var b strings.Builder
	for _, n := range g.Nodes {
		var needs []string
		for _, d := range n.Needs {
			needs = append(needs, d.Name)
		}
		s := n.Step
		fmt.Fprintf(&b, "%s <- [%s]", n.Name, strings.Join(needs, ", "))
		for _, v := range n.Matrix {
			fmt.Fprintf(&b, " %s=%s", v.Name, v.Value)
		}
		if s.Timeout > 0 {
			fmt.Fprintf(&b, " timeout=%s", s.Timeout)
		}
		if s.Retry > 0 {
			fmt.Fprintf(&b, " retry=%d", s.Retry)
		}
		for _, e := range s.Env {
			fmt.Fprintf(&b, " env:%s=%s", e.Name, e.Value)
		}
		if s.When.Status != "" {
			fmt.Fprintf(&b, " status=%s", s.When.Status)
		}
		if len(s.When.Branch) > 0 {
			fmt.Fprintf(&b, " branch=%v", s.When.Branch)
		}
		if s.Deploy != "" {
			fmt.Fprintf(&b, " deploy=%s", s.Deploy)
		}
		if s.Approval != nil {
			fmt.Fprintf(&b, " approval=%s", s.Approval.Role)
		}
		if len(s.Artifacts) > 0 {
			fmt.Fprintf(&b, " artifacts=%v", s.Artifacts)
		}
		if s.Gates.Coverage != nil {
			fmt.Fprintf(&b, " gate.coverage=%g", *s.Gates.Coverage)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestValidGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yml")
	if len(files) == 0 {
		t.Fatal("no valid fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(filepath.Base(f), data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			g, err := Compile(p)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			golden(t, strings.TrimSuffix(f[len("testdata/"):], ".yml")+".golden", describe(g))
		})
	}
}

func TestInvalidGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yml")
	if len(files) == 0 {
		t.Fatal("no invalid fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse("drover.yml", data)
			if err == nil {
				t.Fatal("Parse accepted an invalid file")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			golden(t, strings.TrimSuffix(f[len("testdata/"):], ".yml")+".err", err.Error()+"\n")
		})
	}
}
