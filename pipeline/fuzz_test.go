package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, must return either
// a pipeline that compiles or positioned errors, and every position must be in the file.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("steps: [{name: a, run: b, matrix: {A: [1,2], B: [3,4]}}, {name: c, needs: [a]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("drover.yml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("error without position or message: %+v", e)
				}
			}
			return
		}
		g, err := Compile(p)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile: %v", err)
			}
			return
		}
		if len(g.Nodes) == 0 {
			t.Fatal("a valid pipeline compiled to no steps")
		}
		index := map[*Node]int{}
		for i, n := range g.Nodes {
			for _, dep := range n.Needs {
				if j, ok := index[dep]; !ok || j >= i {
					t.Fatalf("node %q comes before its need %q", n.Name, dep.Name)
				}
			}
			index[n] = i
		}
	})
}
