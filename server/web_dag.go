package server

import (
	"fmt"
	"sort"
	"unicode/utf8"
)

// Sizes of the step graph, in SVG user units (pixels at 100%).
const (
	dagNodeW  = 184
	dagNodeH  = 50
	dagGapX   = 56
	dagGapY   = 18
	dagPad    = 10
	dagMaxLbl = 22 // runes of a step name shown in a node; the full name is its tooltip
)

// dagNode is a step placed in the graph.
type dagNode struct {
	Step   stepJSON
	Label  string // the name, shortened to fit
	URL    string // its log page
	Layer  int    // column: the longest path from a root
	Row    int    // place in its column
	X, Y   int    // top-left corner
	TextX  int    // where its name and status icon start
	StateX int    // where its status's word starts, right of the icon
	NameY  int    // baseline of the name
	StateY int    // baseline of the status line
	IconY  int    // top of the status icon
}

// dagEdge is a need: a curve from the needed step to the step that needs it.
type dagEdge struct {
	From, To string
	Status   string // the needed step's status: an edge lights up once it succeeded
	D        string // the SVG path
}

// dagGraph is a run's steps laid out left to right, ready for the "dag" template.
type dagGraph struct {
	Width, Height int
	NodeW, NodeH  int
	Nodes         []dagNode
	Edges         []dagEdge
}

// dagLayers puts each step in the layer of its longest path from a root (a step that
// needs nothing): roots in layer 0, every step right of all it needs. Needs of steps that
// are not in steps are ignored, and a cycle, which a compiled pipeline never has, is cut.
func dagLayers(steps []stepJSON) map[string]int {
	needs := map[string][]string{}
	for _, s := range steps {
		needs[s.Name] = s.Needs
	}
	layer := map[string]int{}
	visiting := map[string]bool{}
	var depth func(name string) int
	depth = func(name string) int {
		if l, ok := layer[name]; ok {
			return l
		}
		if visiting[name] {
			return 0
		}
		visiting[name] = true
		l := 0
		for _, n := range needs[name] {
			if _, known := needs[n]; known {
				l = max(l, depth(n)+1)
			}
		}
		visiting[name] = false
		layer[name] = l
		return l
	}
	for _, s := range steps {
		depth(s.Name)
	}
	return layer
}

// layoutDAG places the steps: columns by layer, and within a column by the average row
// of what they need (fewer crossings), then by their order in the pipeline. Shorter
// columns are centred. url gives a step's log page.
func layoutDAG(steps []stepJSON, url func(step string) string) dagGraph {
	layers := dagLayers(steps)
	cols := [][]int{} // step indexes per layer, in pipeline order
	for i, s := range steps {
		l := layers[s.Name]
		for len(cols) <= l {
			cols = append(cols, nil)
		}
		cols[l] = append(cols[l], i)
	}
	row := map[string]int{}
	tallest := 0
	for _, col := range cols {
		weight := func(i int) float64 {
			sum, n := 0.0, 0
			for _, need := range steps[i].Needs {
				if r, ok := row[need]; ok {
					sum, n = sum+float64(r), n+1
				}
			}
			if n == 0 {
				return float64(i) / float64(len(steps)+1) // roots keep pipeline order
			}
			return sum / float64(n)
		}
		sort.SliceStable(col, func(a, b int) bool { return weight(col[a]) < weight(col[b]) })
		for r, i := range col {
			row[steps[i].Name] = r
		}
		tallest = max(tallest, len(col))
	}
	g := dagGraph{NodeW: dagNodeW, NodeH: dagNodeH,
		Width:  2*dagPad + len(cols)*dagNodeW + max(len(cols)-1, 0)*dagGapX,
		Height: 2*dagPad + tallest*dagNodeH + max(tallest-1, 0)*dagGapY,
	}
	at := map[string]dagNode{}
	for l, col := range cols {
		offset := (tallest - len(col)) * (dagNodeH + dagGapY) / 2
		for r, i := range col {
			s := steps[i]
			n := dagNode{Step: s, Label: shorten(s.Name, dagMaxLbl), URL: url(s.Name), Layer: l, Row: r,
				X: dagPad + l*(dagNodeW+dagGapX), Y: dagPad + offset + r*(dagNodeH+dagGapY)}
			n.TextX, n.NameY, n.StateY = n.X+12, n.Y+21, n.Y+40
			n.StateX, n.IconY = n.TextX+16, n.StateY-10
			g.Nodes = append(g.Nodes, n)
			at[s.Name] = n
		}
	}
	for _, s := range steps {
		to := at[s.Name]
		for _, need := range s.Needs {
			from, ok := at[need]
			if !ok {
				continue
			}
			x1, y1 := from.X+dagNodeW, from.Y+dagNodeH/2
			x2, y2 := to.X, to.Y+dagNodeH/2
			bend := (x2 - x1) / 2
			g.Edges = append(g.Edges, dagEdge{From: need, To: s.Name, Status: from.Step.Status,
				D: fmt.Sprintf("M%d %dC%d %d,%d %d,%d %d", x1, y1, x1+bend, y1, x2-bend, y2, x2, y2)})
		}
	}
	return g
}

// shorten cuts s to at most n runes, marking the cut with an ellipsis.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
