package pipeline

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Parse reads a drover.yml. file names the file in error messages. On any problem it
// returns an ErrorList with every problem found, each at its line and column; the
// returned Pipeline is then incomplete and must not be run.
func Parse(file string, data []byte) (*Pipeline, error) {
	d := &decoder{file: file}
	p := &Pipeline{File: file}
	root, err := load(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, ErrorList{{File: file, Line: 1, Col: 1, Msg: "the file is empty; it needs a steps: list"}}
	}
	got := decodeMapping(d, root, "pipeline", pipelineFields(), p)
	if root.Kind == yaml.MappingNode && got["steps"] == nil {
		d.errorf(root, "the pipeline has no steps: add a steps: list")
	}
	if len(d.errs) == 0 {
		d.validate(p)
	}
	if len(d.errs) > 0 {
		return p, d.errs.sorted()
	}
	return p, nil
}

// syntaxError turns the YAML library's error into a positioned one.
func syntaxError(file string, err error) *Error {
	var le *yaml.LoadError
	if errors.As(err, &le) && le.Mark.Line > 0 {
		return &Error{File: file, Line: le.Mark.Line, Col: max(le.Mark.Column, 1), Msg: "YAML: " + le.Message}
	}
	var les *yaml.LoadErrors
	if errors.As(err, &les) && len(les.Errors) > 0 {
		e := les.Errors[0]
		return &Error{File: file, Line: max(e.Mark.Line, 1), Col: max(e.Mark.Column, 1), Msg: "YAML: " + e.Message}
	}
	return &Error{File: file, Line: 1, Col: 1, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// steps decodes the steps: list and checks each step on its own.
func (d *decoder) steps(n *yaml.Node) []*Step {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "steps must be a list, not %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, "steps is empty; a pipeline needs at least one step")
	}
	out := make([]*Step, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			d.errorf(item, "step %d must be a mapping with name: and run:, not %s", i+1, kindName(item))
			continue
		}
		s := &Step{Pos: pos(item)}
		got := decodeMapping(d, item, "step", stepFields(), s)
		label := fmt.Sprintf("step %d", i+1)
		if got["name"] == nil {
			d.errorf(item, "%s has no name: every step needs name:", label)
		} else if s.Name != "" {
			label = fmt.Sprintf("step %q", s.Name)
		}
		if strings.TrimSpace(s.Name) == "" && got["name"] != nil {
			d.errorf(got["name"], "%s: name must not be empty", label)
		}
		var actions []string
		for _, a := range []string{"run", "deploy", "approval", "build"} {
			if got[a] != nil {
				actions = append(actions, a)
			}
		}
		switch {
		case len(actions) == 0:
			d.errorf(item, "%s has nothing to do: give it run:, deploy:, approval: or build:", label)
		case len(actions) > 1:
			d.errorf(got[actions[1]], "%s: %s and %s cannot be combined; make them two steps", label, actions[0], actions[1])
		}
		out = append(out, s)
	}
	return out
}

// load parses data as one YAML document and returns its root node, aliases resolved; nil
// when the document is empty. A syntax error comes back as an ErrorList at its position.
func load(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, ErrorList{syntaxError(file, err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = resolve(root.Content[0])
	}
	if root.Kind == 0 || root.Kind == yaml.DocumentNode || isNull(root) {
		return nil, nil
	}
	return root, nil
}
