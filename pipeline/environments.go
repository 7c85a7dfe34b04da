package pipeline

import (
	"regexp"
	"sort"

	"go.yaml.in/yaml/v4"
)

// EnvironmentsFile is the name of the file that declares environments, in the system
// project or the server's data folder.
const EnvironmentsFile = "environments.yml"

// Environments is an environments.yml: the environments that exist and how each changes.
type Environments struct {
	File string
	List []*EnvironmentSpec // by name
	// EphemeralBase is where ephemeral environments take their other services from
	// (ephemeral: {base: staging}); "" keeps the server's default.
	EphemeralBase string
}

// EnvironmentSpec declares one environment.
type EnvironmentSpec struct {
	Name     string
	Pos      Pos
	Strategy string // blue-green (default) or rolling
	Track    string // a branch whose every release is deployed here
	Replicas int    // instances per service here; 0 keeps each service's own
	Approval string // approval role every deploy here needs
	// Separation: whoever pushed a change may not approve it for this environment.
	Separation bool
	// Runtime is where services run here: "" (the server's --runtime), process or docker.
	Runtime string
}

var envNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func environmentFields() []field[EnvironmentSpec] {
	return []field[EnvironmentSpec]{
		{"strategy", "How deploys replace instances: blue-green (default) or rolling.", stringSchema,
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) {
				e.Strategy = d.str(n, "strategy")
				if e.Strategy != "blue-green" && e.Strategy != "rolling" {
					d.errorf(n, "strategy %q: use blue-green or rolling", e.Strategy)
				}
			}},
		{"track", "A branch: every release that passes on it is deployed here, like main.", stringSchema,
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) { e.Track = d.str(n, "track") }},
		{"replicas", "Instances of each service here, over the service's own replicas.", integerSchema(1, 100),
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) { e.Replicas = d.integer(n, "replicas", 1, 100) }},
		{"approval", "An approval role every deploy here needs (deploys by runs wait for it).", stringSchema,
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) { e.Approval = d.str(n, "approval") }},
		{"runtime", "Where services run here: process or docker. Default: the server's --runtime.", stringSchema,
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) {
				e.Runtime = d.str(n, "runtime")
				if e.Runtime != "process" && e.Runtime != "docker" {
					d.errorf(n, "runtime %q: use process or docker", e.Runtime)
				}
			}},
		{"separation", "Whoever pushed a change may not approve it for this environment. Default: false.", booleanSchema,
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) { e.Separation = d.boolean(n, "separation") }},
	}
}

// ParseEnvironments reads an environments.yml. Problems are reported like drover.yml's,
// as FILE:LINE:COL: message, all at once.
func ParseEnvironments(file string, data []byte) (*Environments, error) {
	d := &decoder{file: file}
	out := &Environments{File: file}
	root, err := load(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return out, nil // no environments declared
	}
	top := []field[Environments]{
		{"environments", "The environments, by name.", func() schema { return schema{"type": "object"} },
			func(d *decoder, n *yaml.Node, e *Environments) { d.environments(n, e) }},
	}
	decodeMapping(d, root, "environments file", top, out)
	if len(d.errs) > 0 {
		return nil, d.errs.report()
	}
	sort.Slice(out.List, func(i, j int) bool { return out.List[i].Name < out.List[j].Name })
	return out, nil
}

// environments decodes the environments: mapping.
func (d *decoder) environments(n *yaml.Node, out *Environments) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "environments: write NAME: {strategy: ..., track: ...} pairs")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Value == "ephemeral" {
			fields := []field[Environments]{
				{"base", "The environment ephemeral ones copy their other services from. Default: staging.", stringSchema,
					func(d *decoder, n *yaml.Node, e *Environments) { e.EphemeralBase = d.str(n, "base") }},
			}
			decodeMapping(d, v, "ephemeral", fields, out)
			continue
		}
		if !envNameRE.MatchString(k.Value) {
			d.errorf(k, "environment name %q: use lower-case letters, digits and '-'", k.Value)
			continue
		}
		e := &EnvironmentSpec{Name: k.Value, Pos: Pos{Line: k.Line, Col: k.Column}, Strategy: "blue-green"}
		if !isNull(v) {
			decodeMapping(d, v, "environment "+k.Value, environmentFields(), e)
		}
		if e.Track != "" && e.Approval != "" {
			d.errorf(k, "environment %s: track and approval do not go together: a tracking environment takes every release at once; promote into an approval-gated one", k.Value)
		}
		out.List = append(out.List, e)
	}
}
