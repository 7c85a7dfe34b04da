package server

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func dagSteps(needs ...[]string) []stepJSON {
	out := make([]stepJSON, len(needs))
	for i, n := range needs {
		out[i] = stepJSON{Name: string(rune('a' + i)), Status: "pending", Needs: n}
	}
	return out
}

func TestDAGLayers(t *testing.T) {
	none := []string{}
	for _, tc := range []struct {
		name  string
		steps []stepJSON
		want  map[string]int
	}{
		{"diamond", dagSteps(none, []string{"a"}, []string{"a"}, []string{"b", "c"}),
			map[string]int{"a": 0, "b": 1, "c": 1, "d": 2}},
		{"longest path wins", dagSteps(none, []string{"a"}, []string{"b"}, []string{"a", "c"}),
			map[string]int{"a": 0, "b": 1, "c": 2, "d": 3}},
		{"independent roots", dagSteps(none, none, []string{"a", "b"}),
			map[string]int{"a": 0, "b": 0, "c": 1}},
		{"a need named later", dagSteps([]string{"b"}, none), map[string]int{"a": 1, "b": 0}},
		{"unknown needs ignored", dagSteps([]string{"zz"}), map[string]int{"a": 0}},
		{"a cycle is cut, not followed forever", dagSteps([]string{"b"}, []string{"a"}), map[string]int{"a": 2, "b": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dagLayers(tc.steps); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("dagLayers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLayoutDAGDiamond(t *testing.T) {
	steps := dagSteps([]string{}, []string{"a"}, []string{"a"}, []string{"b", "c"})
	steps[1].Status = "success"
	g := layoutDAG(steps, func(s string) string { return "/log/" + s })
	at := map[string]dagNode{}
	for _, n := range g.Nodes {
		at[n.Step.Name] = n
	}
	a, b, c, d := at["a"], at["b"], at["c"], at["d"]
	if a.Layer != 0 || b.Layer != 1 || c.Layer != 1 || d.Layer != 2 {
		t.Errorf("layers a%d b%d c%d d%d", a.Layer, b.Layer, c.Layer, d.Layer)
	}
	if !(a.X < b.X && b.X == c.X && c.X < d.X) || b.Y >= c.Y || b.Row != 0 || c.Row != 1 {
		t.Errorf("positions: a %+v b %+v c %+v d %+v", a, b, c, d)
	}
	if a.Y != d.Y || a.Y <= b.Y || a.Y >= c.Y { // single nodes centred beside the pair
		t.Errorf("a (y %d) and d (y %d) are not centred between b (%d) and c (%d)", a.Y, d.Y, b.Y, c.Y)
	}
	if g.Width != 2*dagPad+3*dagNodeW+2*dagGapX || g.Height != 2*dagPad+2*dagNodeH+dagGapY {
		t.Errorf("size %dx%d", g.Width, g.Height)
	}
	if b.URL != "/log/b" {
		t.Errorf("url %q", b.URL)
	}
	if len(g.Edges) != 4 {
		t.Fatalf("edges %+v", g.Edges)
	}
	e := g.Edges[2] // b → d: starts at b's right middle, ends at d's left middle
	if e.From != "b" || e.To != "d" || e.Status != "success" ||
		!strings.HasPrefix(e.D, "M"+strconv.Itoa(b.X+dagNodeW)+" "+strconv.Itoa(b.Y+dagNodeH/2)+"C") ||
		!strings.HasSuffix(e.D, ","+strconv.Itoa(d.X)+" "+strconv.Itoa(d.Y+dagNodeH/2)) {
		t.Errorf("edge %+v", e)
	}
}

func TestLayoutDAGOrdersByParents(t *testing.T) {
	// x and y are roots; q needs y, p needs x: q is listed first but drawn beside y.
	steps := []stepJSON{{Name: "x"}, {Name: "y"}, {Name: "q", Needs: []string{"y"}}, {Name: "p", Needs: []string{"x"}}}
	g := layoutDAG(steps, func(string) string { return "" })
	rows := map[string]int{}
	for _, n := range g.Nodes {
		rows[n.Step.Name] = n.Row
	}
	if rows["p"] != 0 || rows["q"] != 1 {
		t.Errorf("rows %v: want p beside x, q beside y", rows)
	}
	if got := shorten("a-very-long-step-name-that-goes-on", 10); got != "a-very-lo…" {
		t.Errorf("shorten = %q", got)
	}
}
