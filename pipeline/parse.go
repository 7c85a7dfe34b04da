package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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
	// The checks across steps run whatever else is wrong, so one pass reports every
	// problem; validate leaves out what a step that failed to parse would make up.
	d.validate(p)
	if len(d.errs) > 0 {
		return p, d.errs.report()
	}
	for _, s := range p.Steps {
		s.Agent = underLabels(p.Agent, s.Agent)
	}
	return p, nil
}

// underLabels is a step's agent labels: the pipeline's with the step's over them; nil
// when neither has any.
func underLabels(pipeline, step map[string]string) map[string]string {
	if len(pipeline) == 0 && len(step) == 0 {
		return nil
	}
	out := make(map[string]string, len(pipeline)+len(step))
	maps.Copy(out, pipeline)
	maps.Copy(out, step)
	return out
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
	d.stepMeta, d.unnamedSteps = make([]stepMeta, 0, len(n.Content)), 0
	expanded := 0     // steps so far, each matrix counted as its combinations
	afterGap := false // the item above was not a step
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			d.errorf(item, "step %d must be a mapping with name: and run:, not %s", i+1, kindName(item))
			afterGap = true
			d.unnamedSteps++
			continue
		}
		s := &Step{Pos: pos(item)}
		d.nameFailed, d.meant = false, d.meant[:0]
		got := decodeMapping(d, item, "step", stepFields(), s)
		label := fmt.Sprintf("step %d", i+1)
		if got["name"] == nil && !slices.Contains(d.meant, "name") {
			d.errorf(item, "%s has no name: every step needs name:", label)
		} else if s.Name != "" {
			label = fmt.Sprintf("step %q", s.Name)
		}
		if strings.TrimSpace(s.Name) == "" && got["name"] != nil && !d.nameFailed {
			d.errorf(got["name"], "%s: name must not be empty", label)
		}
		var actions []string
		for _, a := range stepActions {
			if got[a] != nil {
				actions = append(actions, a)
			}
		}
		switch {
		case len(actions) == 0 && slices.ContainsFunc(d.meant, isAction):
			// A mistyped run: and the like is reported as such; nothing to add.
		case len(actions) == 0:
			d.errorf(item, "%s has nothing to do: give it run:, deploy:, approval: or build:", label)
		case len(actions) > 1:
			d.errorf(got[actions[1]], "%s: %s and %s cannot be combined; make them two steps", label, actions[0], actions[1])
		}
		if got["secrets"] != nil && got["run"] == nil && len(actions) > 0 {
			d.errorf(got["secrets"], "%s: secrets go to a run: script as variables, and this step has none (a service's secrets go under service:)", label)
		}
		combos := 1
		for _, axis := range s.Matrix {
			combos *= len(axis.Values)
		}
		if expanded += combos; expanded > maxSteps && expanded-combos <= maxSteps {
			d.errorf(item, "%s: the pipeline has more than the limit of %d steps once matrices are expanded", label, maxSteps)
		}
		out = append(out, s)
		named := got["name"] != nil && strings.TrimSpace(s.Name) != ""
		if !named {
			d.unnamedSteps++
		}
		d.stepMeta = append(d.stepMeta, stepMeta{
			named:    named,
			label:    label,
			afterGap: afterGap || i == 0,
		})
		afterGap = false
	}
	return out
}

// stepActions are the fields that say what a step does; a step has exactly one.
var stepActions = []string{"run", "deploy", "approval", "build"}

func isAction(field string) bool { return slices.Contains(stepActions, field) }

// stepMeta is what validate needs to know of a step beyond the Step itself.
type stepMeta struct {
	named    bool   // its name parsed: other steps can refer to it
	label    string // how messages name it: step "test", or step 3 when it has no name
	afterGap bool   // no step is written right above it: the first, or after an item that is not a step
}

// maxSteps bounds a pipeline's steps once matrices are expanded. Each becomes a stored
// step, a log and a process, and compiling takes time in proportion to the steps times
// their needs: a 10 KB file of 200 steps that alias one 256-combination matrix, each
// needing the next, took Compile 2 s and 119 MB. 1024 is four of the largest matrices
// (maxMatrix).
const maxSteps = 1024

// MaxFileSize is the largest drover.yml or environments.yml Drover parses: 1 MiB. Real
// pipelines are a few kilobytes; without a bound, one push of a large file made the server
// hold it and build a YAML node for every few bytes of it (a 10 MB file took 700 MB).
// Readers of the file (source.ReadFileLimit) use it to refuse a file before loading it.
const MaxFileSize = 1 << 20

// maxNodes bounds the YAML nodes of a file once aliases and merge keys are expanded, each
// alias counted as the nodes it repeats. A large real pipeline, hundreds of steps of a
// dozen keys each, has about 10,000; 100,000 leaves ten times that, and a file that
// large parses in about 0.2 s and 50 MB. Without it a 1 KB file of 25 nested `<<: [*a, *a]` merges expands
// to 2^25 mappings, which took 12 s and 3 GB to decode (testdata/invalid/merge-bomb.yml).
const maxNodes = 100_000

// maxExpandedBytes bounds the text of a file's scalars once aliases are expanded: an
// alias of a long string repeats it in every message that quotes the value, and a 100 KB
// file of 200 aliases of a 100 KB string made a 20 MB error. Four times the largest file
// leaves room for templates merged into many steps.
const maxExpandedBytes = 4 * MaxFileSize

// load parses data as one YAML document and returns its root node, aliases resolved; nil
// when the document is empty. A syntax error, a file over MaxFileSize and a document that
// expands past maxNodes or maxExpandedBytes come back as an ErrorList at their position.
func load(file string, data []byte) (*yaml.Node, error) {
	if len(data) > MaxFileSize {
		return nil, ErrorList{{File: file, Line: 1, Col: 1,
			Msg: fmt.Sprintf("the file is %d bytes; the limit is %s", len(data), mebibytes(MaxFileSize))}}
	}
	// Decoding into a yaml.Node keeps aliases as AliasNodes pointing at their anchor: the
	// tree has the nodes the file writes, never their expansion.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, ErrorList{syntaxError(file, err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		x := &expansion{sizes: map[*yaml.Node]size{}, open: map[*yaml.Node]bool{}}
		if x.walk(root.Content[0]); x.err != nil {
			x.err.File = file
			return nil, ErrorList{x.err}
		}
		root = resolve(root.Content[0])
	}
	if root.Kind == 0 || root.Kind == yaml.DocumentNode || isNull(root) {
		return nil, nil
	}
	return root, nil
}

// expansion counts what a YAML tree becomes once every alias is replaced by the node it
// names (`<<: *defaults` merges through an alias too), without building it. The decoder
// walks the expanded tree, so bounding it bounds the decoder's work. An alias may only
// name an anchor written before it, so by the time the walk meets one, the anchored node's
// size is known, or the node is still open: the alias is inside it. Each node as written
// is visited once, however large its expansion.
type expansion struct {
	total size
	sizes map[*yaml.Node]size // expanded size of each anchored node walked
	open  map[*yaml.Node]bool // anchored nodes being walked: the current node's ancestors
	err   *Error              // the first limit passed; File is left for the caller
}

// size is an expanded tree's nodes and the bytes of their values.
type size struct{ nodes, bytes int }

func (s size) plus(t size) size { return size{s.nodes + t.nodes, s.bytes + t.bytes} }

// walk returns n's expanded size and adds it to the total, in document order, so the
// node that passes a limit is where the error points: an alias, or a node written out.
// The total never exceeds a limit by more than one addition, so sizes cannot overflow.
func (x *expansion) walk(n *yaml.Node) size {
	if x.err != nil || n == nil {
		return size{}
	}
	if n.Kind == yaml.AliasNode {
		target := n.Alias
		if target == nil {
			return size{}
		}
		if x.open[target] {
			x.fail(n, fmt.Sprintf("YAML: *%s is inside the node it names, so it would repeat without end", n.Value))
			return size{}
		}
		s, ok := x.sizes[target]
		if !ok {
			// Not a node written before: the YAML library does not make these. Counting
			// it in full is safe (its nodes count twice), and it is counted once.
			s = x.walk(target)
			x.sizes[target] = s
		}
		x.add(n, s, "*"+n.Value)
		return s
	}
	if n.Anchor != "" {
		x.open[n] = true
		defer delete(x.open, n)
	}
	s := size{1, len(n.Value)}
	x.add(n, s, "")
	for _, c := range n.Content {
		s = s.plus(x.walk(c))
	}
	if n.Anchor != "" {
		x.sizes[n] = s
	}
	return s
}

// add adds s, the size of node n, to the total; alias names n when it is an alias.
func (x *expansion) add(n *yaml.Node, s size, alias string) {
	x.total = x.total.plus(s)
	switch {
	case x.err != nil:
	case x.total.nodes > maxNodes && alias != "":
		x.fail(n, fmt.Sprintf("YAML: %s expands the file past the limit of %d nodes (aliases and merge keys count as the nodes they repeat)", alias, maxNodes))
	case x.total.nodes > maxNodes:
		x.fail(n, fmt.Sprintf("YAML: the file has more than the limit of %d nodes", maxNodes))
	case x.total.bytes > maxExpandedBytes && alias != "":
		x.fail(n, fmt.Sprintf("YAML: %s expands the file past the limit of %s of values (aliases and merge keys count as the text they repeat)", alias, mebibytes(maxExpandedBytes)))
	case x.total.bytes > maxExpandedBytes:
		x.fail(n, fmt.Sprintf("YAML: the file has more than the limit of %s of values", mebibytes(maxExpandedBytes)))
	}
}

func (x *expansion) fail(n *yaml.Node, msg string) {
	x.err = &Error{Line: max(n.Line, 1), Col: max(n.Column, 1), Msg: msg}
}

// mebibytes writes a size limit the way people read it: 1 MiB, or bytes when it is not
// a whole number of MiB.
func mebibytes(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
