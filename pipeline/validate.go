package pipeline

import (
	"fmt"
	"strings"
)

// validate checks what involves more than one step: unique names, needs that exist,
// no dependency cycles. It runs whatever else is wrong with the file, so one pass reports
// every problem, and leaves out what a broken step would make up: a step whose name did
// not parse takes part in no name check, a need is not called unknown while some step's
// name is unknown (it may be the one meant), and the cycle check follows only the needs
// that name exactly one step.
func (d *decoder) validate(p *Pipeline) {
	if len(d.stepMeta) != len(p.Steps) {
		return // steps: did not decode as a list
	}
	byName := map[string]int{} // the first step of each name
	repeated := map[string]bool{}
	var names []string
	for i, s := range p.Steps {
		if !d.stepMeta[i].named {
			continue
		}
		if first, dup := byName[s.Name]; dup {
			repeated[s.Name] = true
			d.errs = append(d.errs, &Error{File: d.file, Line: s.Pos.Line, Col: s.Pos.Col,
				Msg: fmt.Sprintf("step name %q is used twice (first at line %d)", s.Name, p.Steps[first].Pos.Line)})
			continue
		}
		byName[s.Name] = i
		names = append(names, s.Name)
	}
	d.expandedNames(p, byName)
	for i, s := range p.Steps {
		for k, need := range s.Needs {
			at := s.NeedsPos[k]
			_, known := byName[need]
			switch {
			case d.stepMeta[i].named && need == s.Name:
				d.errs = append(d.errs, &Error{File: d.file, Line: at.Line, Col: at.Col,
					Msg: fmt.Sprintf("step %q needs itself", s.Name)})
			case !known && d.unnamedSteps == 0:
				d.errs = append(d.errs, &Error{File: d.file, Line: at.Line, Col: at.Col,
					Msg: fmt.Sprintf("%s needs %q, which is not a step%s", d.stepMeta[i].label, need, d.suggestion(need, names))})
			}
		}
	}
	deps := func(i int) []int {
		s := p.Steps[i]
		if !s.NeedsSet {
			if d.stepMeta[i].afterGap {
				return nil
			}
			return []int{i - 1}
		}
		var out []int
		for _, need := range s.Needs {
			if j, ok := byName[need]; ok && j != i && !repeated[need] {
				out = append(out, j)
			}
		}
		return out
	}
	if loop := findCycle(len(p.Steps), deps); loop != nil {
		cycle := make([]string, 0, len(loop)+1)
		for _, i := range loop {
			if d.stepMeta[i].named {
				cycle = append(cycle, p.Steps[i].Name)
			} else {
				cycle = append(cycle, d.stepMeta[i].label)
			}
		}
		first := p.Steps[loop[0]]
		d.errs = append(d.errs, &Error{File: d.file, Line: first.Pos.Line, Col: first.Pos.Col,
			Msg: "dependency cycle: " + strings.Join(append(cycle, cycle[0]), " → ")})
	}
}

// expandedNames reports a matrix step's combination whose name another step has, like
// `test (GOARCH=arm64)` written out beside a matrix step test; steps of one name are
// reported as used twice already. Only steps whose names parsed take part, and nothing
// when the matrices expand past maxSteps (which steps reports).
func (d *decoder) expandedNames(p *Pipeline, byName map[string]int) {
	total := 0
	for _, s := range p.Steps {
		combos := 1
		for _, axis := range s.Matrix {
			combos *= len(axis.Values)
		}
		if total += combos; total > maxSteps {
			return
		}
	}
	seen := map[string]int{} // expanded name → the step it first came from
	for i, s := range p.Steps {
		if !d.stepMeta[i].named || byName[s.Name] != i {
			continue
		}
		for _, combo := range combinations(s.Matrix) {
			name := s.Name
			if combo != nil {
				name = matrixName(s.Name, combo)
			}
			if _, dup := seen[name]; dup {
				d.errs = append(d.errs, &Error{File: d.file, Line: s.Pos.Line, Col: s.Pos.Col,
					Msg: fmt.Sprintf("step name %q is used twice once matrices are expanded", name)})
				continue
			}
			seen[name] = i
		}
	}
}

// dependencies lists the names a step waits for: its needs, or the step above it.
func dependencies(steps []*Step, i int) []string {
	if steps[i].NeedsSet {
		return steps[i].Needs
	}
	if i == 0 {
		return nil
	}
	return []string{steps[i-1].Name}
}

// findCycle returns the steps of one dependency cycle among n steps, each waiting for
// the steps deps lists, or nil. The cycle starts at the step written first among its
// members and follows the direction work flows (a step, then the steps that need it).
func findCycle(n int, deps func(i int) []int) []int {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, n)
	var path []int
	var cycle []int
	var visit func(i int) bool
	visit = func(i int) bool {
		state[i] = onPath
		path = append(path, i)
		for _, j := range deps(i) {
			if state[j] == onPath {
				start := 0
				for k, v := range path {
					if v == j {
						start = k
					}
				}
				loop := path[start:]
				// Rotate so the earliest-written step leads, for a stable message.
				lead := 0
				for k, v := range loop {
					if v < loop[lead] {
						lead = k
					}
				}
				// path follows "needs" edges; list in the direction work flows.
				for k := range loop {
					cycle = append(cycle, loop[(lead+len(loop)-k)%len(loop)])
				}
				return true
			}
			if state[j] == unseen && visit(j) {
				return true
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return false
	}
	for i := range n {
		if state[i] == unseen && visit(i) {
			return cycle
		}
	}
	return nil
}
