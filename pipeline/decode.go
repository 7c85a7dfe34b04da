package pipeline

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/drover-cd/drover/internal/duration"
)

// field is one key of a YAML mapping: its documentation, its JSON Schema, and how its
// value is decoded into the Go value T. The same table drives the parser (known keys,
// did-you-mean) and `drover schema`, so the two cannot drift apart.
type field[T any] struct {
	name   string
	doc    string
	schema func() schema
	decode func(d *decoder, n *yaml.Node, v *T)
}

// decoder walks YAML nodes and collects positioned errors; it never stops at the first.
type decoder struct {
	file      string
	errs      ErrorList
	suggested int        // did-you-mean work done, see suggestion
	stepMeta  []stepMeta // one for each step decoded, as Pipeline.Steps

	// unnamedSteps counts the items of steps: that other steps cannot be known to
	// name: not a mapping, or a mapping whose name: is missing or failed to parse.
	unnamedSteps int
	nameFailed   bool     // the name: of the step being decoded is not a string
	meant        []string // the fields did-you-means named, for steps to see what a typo was
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// suggestion is the did-you-mean for an error about to be added, or "" once the file has
// more errors than report lists or its did-you-means have done suggestWork: a file may
// have thousands of unknown keys, or a hundred unknown needs among a thousand step names.
func (d *decoder) suggestion(s string, candidates []string) string {
	if len(d.errs) >= maxErrors || len(s) > maxSuggest {
		return ""
	}
	work := 0 // editDistance's table, for the candidates didYouMean compares at most
	for _, c := range candidates {
		work += len(s) * min(len(c), maxSuggest)
	}
	if d.suggested += work; d.suggested > suggestWork {
		return ""
	}
	if m := didYouMean(s, candidates); m != "" {
		d.meant = append(d.meant, m)
		return fmt.Sprintf("; did you mean %q?", m)
	}
	return ""
}

// suggestWork bounds the did-you-mean work for one file, in cells of editDistance's
// table, tens of milliseconds; a typo among fifty steps costs a few thousand.
const suggestWork = 10_000_000

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName names a node's kind the way a user reads YAML.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return fmt.Sprintf("the string %q", n.Value)
	}
	return "something else"
}

// pair is one key and value of a mapping, after `<<` merges are applied.
type pair struct{ key, value *yaml.Node }

// pairs lists a mapping's entries; keys merged in with `<<: *anchor` come first and are
// overridden by keys written in the mapping itself, as YAML 1.1 merge keys specify.
func (d *decoder) pairs(n *yaml.Node) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
			srcs := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				srcs = v.Content
			}
			for _, s := range srcs {
				if s = resolve(s); s.Kind != yaml.MappingNode {
					d.errorf(s, "<< merges a mapping, not %s", kindName(s))
					continue
				}
				merged = append(merged, d.pairs(s)...)
			}
			continue
		}
		own = append(own, pair{k, v})
	}
	seen := map[string]bool{}
	for _, p := range own {
		seen[p.key.Value] = true
	}
	out := make([]pair, 0, len(own)+len(merged))
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			out = append(out, p)
		}
	}
	return append(out, own...)
}

// decodeMapping decodes the mapping n into v with fields, reporting unknown and repeated
// keys. what names the mapping in messages ("step", "when"). It returns the keys present.
func decodeMapping[T any](d *decoder, n *yaml.Node, what string, fields []field[T], v *T) map[string]*yaml.Node {
	present := map[string]*yaml.Node{}
	if isNull(n) {
		return present
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
		return present
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	for _, p := range d.pairs(n) {
		key := p.key.Value
		if p.key.Kind != yaml.ScalarNode {
			d.errorf(p.key, "%s keys must be plain names", what)
			continue
		}
		if prev, dup := present[key]; dup {
			d.errorf(p.key, "%s field %q is repeated (first at line %d)", what, key, prev.Line)
			continue
		}
		present[key] = p.key
		if what == "pipeline" && isTemplateKey(key) {
			continue
		}
		i := indexOf(names, key)
		if i < 0 {
			d.errorf(p.key, "unknown %s field %q%s", what, key, d.suggestion(key, names))
			continue
		}
		fields[i].decode(d, p.value, v)
	}
	return present
}

// isTemplateKey reports a top-level key that holds YAML anchors for steps to merge
// (`.defaults: &defaults`), as GitLab CI's hidden keys and Compose's x- extensions do.
func isTemplateKey(key string) bool {
	return strings.HasPrefix(key, ".") || strings.HasPrefix(key, "x-")
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// str decodes a scalar as a string; numbers and booleans keep their written text.
func (d *decoder) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, "%s must be a string, not %s", what, kindName(n))
		return ""
	}
	return n.Value
}

func (d *decoder) boolean(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, "%s must be true or false, not %s", what, kindName(n))
		return false
	}
	b, _ := strconv.ParseBool(strings.ToLower(n.Value))
	return b
}

func (d *decoder) integer(n *yaml.Node, what string, lo, hi int) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, "%s must be a whole number, not %s", what, kindName(n))
		return 0
	}
	i, err := strconv.Atoi(n.Value)
	if err != nil || i < lo || i > hi {
		d.errorf(n, "%s must be between %d and %d, not %s", what, lo, hi, n.Value)
		return 0
	}
	return i
}

func (d *decoder) number(n *yaml.Node, what string, lo, hi float64) float64 {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		d.errorf(n, "%s must be a number, not %s", what, kindName(n))
		return 0
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || f < lo || f > hi {
		d.errorf(n, "%s must be between %g and %g, not %s", what, lo, hi, n.Value)
		return 0
	}
	return f
}

// duration decodes a duration such as 90s, 10m, 1h30m or 7d (Go's syntax plus d for
// days, as every duration Drover takes); it must be positive.
func (d *decoder) duration(n *yaml.Node, what string) time.Duration {
	s := d.str(n, what)
	if s == "" {
		return 0
	}
	v, err := duration.Parse(s)
	if err != nil || v <= 0 {
		d.errorf(n, "%s: %q is not a duration; write it like 90s, 10m, 1h30m or 7d", what, s)
		return 0
	}
	return v
}

// strList decodes a list of strings; a single string is a list of one.
func (d *decoder) strList(n *yaml.Node, what string) ([]string, []Pos) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return []string{n.Value}, []Pos{pos(n)}
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list of strings, not %s", what, kindName(n))
		return nil, nil
	}
	out, at := make([]string, 0, len(n.Content)), make([]Pos, 0, len(n.Content))
	for _, item := range n.Content {
		if item = resolve(item); item.Kind != yaml.ScalarNode || isNull(item) {
			d.errorf(item, "%s entries must be strings, not %s", what, kindName(item))
			continue
		}
		out, at = append(out, item.Value), append(at, pos(item))
	}
	return out, at
}

var (
	// imageTagRE is the OCI distribution spec's tag grammar.
	imageTagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	// runTagRE matches the names Drover gives a run's image itself: its number and
	// release tag r<number>, which the registry keeps immutable.
	runTagRE = regexp.MustCompile(`^r?[0-9]+$`)
)

// imageTags decodes build.tags: valid tag names that are not Drover's own.
func (d *decoder) imageTags(n *yaml.Node) []string {
	tags, at := d.strList(n, "build.tags")
	for i, t := range tags {
		node := &yaml.Node{Line: at[i].Line, Column: at[i].Col}
		switch {
		case !imageTagRE.MatchString(t):
			d.errorf(node, "build.tags: %q is not a tag: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'", t)
		case runTagRE.MatchString(t):
			d.errorf(node, "build.tags: %q is Drover's: every image is tagged with its run's number, and r<number> names releases; choose another name", t)
		}
	}
	return tags
}

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// secretName is the grammar of secrets' names (package secret checks the same).
	secretName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
)

// secrets decodes a list of secrets' names: upper-case variable names, each once.
func (d *decoder) secrets(n *yaml.Node, what string) []string {
	names, at := d.strList(n, what)
	seen := map[string]bool{}
	out := names[:0]
	for i, name := range names {
		node := &yaml.Node{Line: at[i].Line, Column: at[i].Col}
		switch {
		case !secretName.MatchString(name):
			d.errorf(node, "%s: %q is not a secret's name: upper-case letters, digits and _, like DB_PASSWORD", what, name)
		case seen[name]:
			d.errorf(node, "%s: %s is repeated", what, name)
		default:
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// env decodes a mapping of variable names to scalar values, keeping the written order.
// labelName is what an agent label's name may be.
var labelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// agent decodes an agent: mapping into its labels (empty, not nil, when it has none).
func (d *decoder) agent(n *yaml.Node, what string) map[string]string {
	labels := map[string]string{}
	decodeMapping(d, n, what, agentFields(), &labels)
	if labels == nil {
		labels = map[string]string{}
	}
	return labels
}

// labels decodes a mapping of label NAME: value.
func (d *decoder) labels(n *yaml.Node, what string) map[string]string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping of NAME: value, like {os: linux}, not %s", what, kindName(n))
		return nil
	}
	out := map[string]string{}
	for _, p := range d.pairs(n) {
		name := p.key.Value
		if !labelName.MatchString(name) {
			d.errorf(p.key, "%s: %q is not a label name (letters, digits, '.', '_', '/' and '-')", what, name)
			continue
		}
		if _, dup := out[name]; dup {
			d.errorf(p.key, "%s: %s is repeated", what, name)
			continue
		}
		if v := p.value; v.Kind != yaml.ScalarNode || isNull(v) || v.Value == "" {
			d.errorf(v, "%s: %s needs a value, like %s: linux", what, name, name)
			continue
		}
		out[name] = p.value.Value
	}
	return out
}

func (d *decoder) env(n *yaml.Node, what string) []EnvVar {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping of NAME: value, not %s", what, kindName(n))
		return nil
	}
	var out []EnvVar
	seen := map[string]int{}
	for _, p := range d.pairs(n) {
		name := p.key.Value
		if !envName.MatchString(name) {
			d.errorf(p.key, "%s: %q is not a variable name (letters, digits and _, not starting with a digit)", what, name)
			continue
		}
		if line, dup := seen[name]; dup {
			d.errorf(p.key, "%s: %s is repeated (first at line %d)", what, name, line)
			continue
		}
		seen[name] = p.key.Line
		v := p.value
		if v.Kind != yaml.ScalarNode {
			d.errorf(v, "%s: %s must be a string, number or boolean, not %s", what, name, kindName(v))
			continue
		}
		value := v.Value
		if isNull(v) {
			value = ""
		}
		out = append(out, EnvVar{Name: name, Value: value, Pos: pos(p.key)})
	}
	return out
}
