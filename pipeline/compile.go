package pipeline

import (
	"fmt"
	"strings"
)

// Graph is a compiled pipeline: matrix steps expanded, every dependency resolved.
// Nodes are in written order, which is also a valid topological order.
type Graph struct {
	Pipeline *Pipeline
	Nodes    []*Node
}

// Node is one runnable step of the graph.
type Node struct {
	Name   string   // the step's name, with its matrix values for matrix steps
	Step   *Step    // the step as written
	Matrix []EnvVar // this combination's values; nil for plain steps
	Needs  []*Node  // nodes that must finish first
}

// Compile expands matrices and resolves needs. p must have parsed without errors.
func Compile(p *Pipeline) (*Graph, error) {
	g := &Graph{Pipeline: p}
	expanded := make(map[string][]*Node, len(p.Steps))
	for _, s := range p.Steps {
		for _, combo := range combinations(s.Matrix) {
			n := &Node{Name: s.Name, Step: s, Matrix: combo}
			if combo != nil {
				n.Name = matrixName(s.Name, combo)
			}
			expanded[s.Name] = append(expanded[s.Name], n)
			g.Nodes = append(g.Nodes, n)
		}
	}
	for i, s := range p.Steps {
		var deps []*Node
		for _, name := range dependencies(p.Steps, i) {
			nodes, ok := expanded[name]
			if !ok {
				// Parse rejects unknown names; this guards a Pipeline built by hand.
				return nil, invalidf("step %q needs %q, which is not a step", s.Name, name)
			}
			deps = append(deps, nodes...)
		}
		for _, n := range expanded[s.Name] {
			n.Needs = deps
		}
	}
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		if seen[n.Name] {
			return nil, ErrorList{{File: p.File, Line: n.Step.Pos.Line, Col: n.Step.Pos.Col,
				Msg: fmt.Sprintf("step name %q is used twice once matrices are expanded", n.Name)}}
		}
		seen[n.Name] = true
	}
	return g, ordered(g)
}

// ordered makes Nodes a topological order even when needs point at steps written later.
func ordered(g *Graph) error {
	done := make(map[*Node]bool, len(g.Nodes))
	out := make([]*Node, 0, len(g.Nodes))
	for len(out) < len(g.Nodes) {
		progress := false
		for _, n := range g.Nodes {
			if done[n] {
				continue
			}
			ready := true
			for _, dep := range n.Needs {
				ready = ready && done[dep]
			}
			if ready {
				done[n], progress = true, true
				out = append(out, n)
			}
		}
		if !progress {
			return invalidf("the steps' needs form a cycle")
		}
	}
	g.Nodes = out
	return nil
}

// combinations lists every combination of the axes' values, first axis slowest;
// a step without a matrix has one combination, nil.
func combinations(axes []MatrixAxis) [][]EnvVar {
	out := [][]EnvVar{nil}
	for _, axis := range axes {
		var next [][]EnvVar
		for _, prefix := range out {
			for _, v := range axis.Values {
				combo := append(append([]EnvVar(nil), prefix...), EnvVar{Name: axis.Name, Value: v})
				next = append(next, combo)
			}
		}
		out = next
	}
	return out
}

func matrixName(base string, combo []EnvVar) string {
	parts := make([]string, len(combo))
	for i, v := range combo {
		parts[i] = v.Name + "=" + v.Value
	}
	return base + " (" + strings.Join(parts, ", ") + ")"
}

// Select keeps only the named nodes; a name of a matrix step selects all its combinations.
// Dependencies of kept nodes that are not kept are dropped: the caller asked for these steps
// alone. Unknown names are an error that suggests the closest name.
func (g *Graph) Select(names []string) error {
	if len(names) == 0 {
		return nil
	}
	keep := map[*Node]bool{}
	var all []string
	for _, n := range g.Nodes {
		all = append(all, n.Name)
	}
	for _, name := range names {
		found := false
		for _, n := range g.Nodes {
			if n.Name == name || n.Step.Name == name {
				keep[n], found = true, true
			}
		}
		if !found {
			return invalidf("no step is named %q%s", name, suggestion(name, all))
		}
	}
	var out []*Node
	for _, n := range g.Nodes {
		if !keep[n] {
			continue
		}
		var needs []*Node
		for _, dep := range n.Needs {
			if keep[dep] {
				needs = append(needs, dep)
			}
		}
		n.Needs = needs
		out = append(out, n)
	}
	g.Nodes = out
	return nil
}

// UsesChangedFiles reports whether a step has a when.path condition, so the caller knows
// whether listing the change's files (a git process) is worth it.
func (g *Graph) UsesChangedFiles() bool {
	for _, n := range g.Nodes {
		if len(n.Step.When.Path) > 0 {
			return true
		}
	}
	return false
}
