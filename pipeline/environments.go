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
	// Runtime is where services run here: "" (the server's --runtime), process, docker
	// or swarm.
	Runtime string
	// Swarm is the cluster of runtime: swarm.
	Swarm Swarm
	// Services override, per service, what drover.yml's service: says about size and
	// placement: placement differs between staging and production.
	Services map[string]*ServiceSettings
}

// Swarm says how to reach a Docker Swarm cluster: a manager's Docker Engine.
type Swarm struct {
	Host string // unix:///var/run/docker.sock or tcp://HOST:2376
	TLS  string // a folder with ca.pem, cert.pem and key.pem, as for docker --tlsverify; "" for none
}

// ServiceSettings are one service's size and placement in one environment; zero
// fields keep drover.yml's.
type ServiceSettings struct {
	Replicas  int
	Placement Placement
	Resources Resources
}

// Runtimes an environment's services run on.
const (
	RuntimeProcess = "process"
	RuntimeDocker  = "docker"
	RuntimeSwarm   = "swarm"
)

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
		{"runtime", "Where services run here: process, docker or swarm (a Docker Swarm cluster: see swarm). Default: the server's --runtime.", stringSchema,
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) {
				e.Runtime = d.str(n, "runtime")
				if e.Runtime != RuntimeProcess && e.Runtime != RuntimeDocker && e.Runtime != RuntimeSwarm {
					d.errorf(n, "runtime %q: use process, docker or swarm", e.Runtime)
				}
			}},
		{"swarm", "The Docker Swarm cluster of runtime: swarm: {host: unix:///var/run/docker.sock | tcp://HOST:2376, tls: DIR}.",
			func() schema { return objectSchema(swarmFields()) },
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) {
				decodeMapping(d, n, "swarm", swarmFields(), &e.Swarm)
			}},
		{"services", "Per service: replicas, placement and resources here, over drover.yml's service: section.",
			func() schema {
				return schema{"type": "object", "additionalProperties": objectSchema(serviceSettingsFields())}
			},
			func(d *decoder, n *yaml.Node, e *EnvironmentSpec) { e.Services = d.serviceSettings(n) }},
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
		switch {
		case e.Runtime == RuntimeSwarm && e.Swarm.Host == "":
			d.errorf(k, "environment %s: runtime: swarm needs swarm: {host: ...}, the Docker Engine of a Swarm manager", k.Value)
		case e.Runtime != RuntimeSwarm && e.Swarm.Host != "":
			d.errorf(k, "environment %s: swarm: is for runtime: swarm", k.Value)
		}
		if e.Track != "" && e.Approval != "" {
			d.errorf(k, "environment %s: track and approval do not go together: a tracking environment takes every release at once; promote into an approval-gated one", k.Value)
		}
		out.List = append(out.List, e)
	}
}

func swarmFields() []field[Swarm] {
	return []field[Swarm]{
		{"host", "A Swarm manager's Docker Engine: unix:///var/run/docker.sock or tcp://HOST:2376.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Swarm) {
				s.Host = d.str(n, "swarm.host")
				if !swarmHostRE.MatchString(s.Host) {
					d.errorf(n, "swarm.host %q: write unix:///PATH or tcp://HOST:PORT", s.Host)
				}
			}},
		{"tls", "A folder with ca.pem, cert.pem and key.pem for a tcp:// host, as for docker --tlsverify.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Swarm) { s.TLS = d.str(n, "swarm.tls") }},
	}
}

var swarmHostRE = regexp.MustCompile(`^(unix:///\S+|tcp://[^/\s]+:[0-9]+)$`)

func serviceSettingsFields() []field[ServiceSettings] {
	return []field[ServiceSettings]{
		{"replicas", "Instances of the service here.", integerSchema(1, 100),
			func(d *decoder, n *yaml.Node, s *ServiceSettings) { s.Replicas = d.integer(n, "replicas", 1, 100) }},
		{"placement", "Where a cluster puts its instances here: spread and constraints.",
			func() schema { return objectSchema(placementFields()) },
			func(d *decoder, n *yaml.Node, s *ServiceSettings) {
				decodeMapping(d, n, "placement", placementFields(), &s.Placement)
			}},
		{"resources", "Limits of each instance here: cpu and memory.",
			func() schema { return objectSchema(resourcesFields()) },
			func(d *decoder, n *yaml.Node, s *ServiceSettings) {
				decodeMapping(d, n, "resources", resourcesFields(), &s.Resources)
			}},
	}
}

// serviceSettings decodes an environment's services: mapping.
func (d *decoder) serviceSettings(n *yaml.Node) map[string]*ServiceSettings {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "services: write SERVICE: {replicas: ..., placement: ..., resources: ...} pairs")
		return nil
	}
	out := map[string]*ServiceSettings{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if !serviceNameRE.MatchString(k.Value) {
			d.errorf(k, "service name %q: use letters, digits, '-' and '_'", k.Value)
			continue
		}
		s := &ServiceSettings{}
		decodeMapping(d, v, "service "+k.Value, serviceSettingsFields(), s)
		out[k.Value] = s
	}
	return out
}

var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
