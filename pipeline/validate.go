package pipeline

import (
	"fmt"
	"strings"
)

// validate checks what involves more than one step: unique names, needs that exist,
// no dependency cycles. Called only when every step parsed on its own.
func (d *decoder) validate(p *Pipeline) {
	byName := map[string]*Step{}
	var names []string
	for _, s := range p.Steps {
		if prev, dup := byName[s.Name]; dup {
			d.errs = append(d.errs, &Error{File: d.file, Line: s.Pos.Line, Col: s.Pos.Col,
				Msg: fmt.Sprintf("step name %q is used twice (first at line %d)", s.Name, prev.Pos.Line)})
			continue
		}
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	for _, s := range p.Steps {
		for i, need := range s.Needs {
			at := s.NeedsPos[i]
			switch {
			case need == s.Name:
				d.errs = append(d.errs, &Error{File: d.file, Line: at.Line, Col: at.Col,
					Msg: fmt.Sprintf("step %q needs itself", s.Name)})
			case byName[need] == nil:
				d.errs = append(d.errs, &Error{File: d.file, Line: at.Line, Col: at.Col,
					Msg: fmt.Sprintf("step %q needs %q, which is not a step%s", s.Name, need, d.suggestion(need, names))})
			}
		}
	}
	if len(d.errs) == 0 {
		if cycle := findCycle(p.Steps); cycle != nil {
			first := byName[cycle[0]]
			d.errs = append(d.errs, &Error{File: d.file, Line: first.Pos.Line, Col: first.Pos.Col,
				Msg: "dependency cycle: " + strings.Join(cycle, " → ")})
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

// findCycle returns the step names of one dependency cycle, starting and ending with the
// same step, or nil. The cycle starts at the step written first among its members.
func findCycle(steps []*Step) []string {
	index := map[string]int{}
	for i, s := range steps {
		index[s.Name] = i
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(steps))
	var path []int
	var cycle []string
	var visit func(i int) bool
	visit = func(i int) bool {
		state[i] = onPath
		path = append(path, i)
		for _, dep := range dependencies(steps, i) {
			j := index[dep]
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
				// path follows "needs" edges; print in the direction work flows.
				for k := range loop {
					cycle = append(cycle, steps[loop[(lead+len(loop)-k)%len(loop)]].Name)
				}
				cycle = append(cycle, cycle[0])
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
	for i := range steps {
		if state[i] == unseen && visit(i) {
			return cycle
		}
	}
	return nil
}
