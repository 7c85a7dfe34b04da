package pipeline

import (
	"regexp"

	"go.yaml.in/yaml/v4"
)

func serviceFields() []field[Service] {
	return []field[Service]{
		{"name", "Service name, used in URLs and as <NAME>_URL in services that require it. Default: the project name.",
			stringSchema, func(d *decoder, n *yaml.Node, s *Service) { s.Name = d.str(n, "service.name") }},
		{"command", "Command run inside the unpacked release; $PORT is set.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Service) { s.Command = d.str(n, "service.command") }},
		{"image", "Container image of the release (Docker runtime); `self` is the image the run built.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Service) { s.Image = d.str(n, "service.image") }},
		{"health", "HTTP path that answers 2xx when healthy, or a mapping with path, interval, timeout and thresholds.",
			func() schema {
				return schema{"anyOf": []schema{{"type": "string"}, objectSchema(healthFields())}}
			},
			func(d *decoder, n *yaml.Node, s *Service) {
				if n.Kind == yaml.ScalarNode {
					s.Health.Path = d.str(n, "service.health")
					return
				}
				decodeMapping(d, n, "service.health", healthFields(), &s.Health)
			}},
		{"replicas", "Instances to run. Default: 1.", integerSchema(1, 100),
			func(d *decoder, n *yaml.Node, s *Service) { s.Replicas = d.integer(n, "service.replicas", 1, 100) }},
		{"requires", "Services this one calls; each is injected as <NAME>_URL.", stringListSchema,
			func(d *decoder, n *yaml.Node, s *Service) { s.Requires, _ = d.strList(n, "service.requires") }},
		{"env", "Variables of every instance.", envSchema,
			func(d *decoder, n *yaml.Node, s *Service) { s.Env = d.env(n, "service.env") }},
		{"secrets", "Secrets every instance gets as environment variables, resolved for the environment it runs in: the staging value in staging, the production value in production. Default: none.",
			secretsSchema,
			func(d *decoder, n *yaml.Node, s *Service) { s.Secrets = d.secrets(n, "service.secrets") }},
		{"stop_timeout", "Time an instance gets to stop after TERM before it is killed. Default: 10s.", durationSchema,
			func(d *decoder, n *yaml.Node, s *Service) { s.StopTimeout = d.duration(n, "service.stop_timeout") }},
		{"resources", "Limits of a container instance.",
			func() schema { return objectSchema(resourcesFields()) },
			func(d *decoder, n *yaml.Node, s *Service) {
				decodeMapping(d, n, "service.resources", resourcesFields(), &s.Resources)
			}},
		{"placement", "Where a cluster (runtime: swarm) puts the instances: spread over a node label, and constraints.",
			func() schema { return objectSchema(placementFields()) },
			func(d *decoder, n *yaml.Node, s *Service) {
				decodeMapping(d, n, "service.placement", placementFields(), &s.Placement)
			}},
	}
}

func placementFields() []field[Placement] {
	return []field[Placement]{
		{"spread", "A node label to spread instances evenly over, like node.labels.zone.",
			func() schema {
				return schema{"type": "string", "pattern": placementLabelRE.String(), "examples": []string{"node.labels.zone"}}
			},
			func(d *decoder, n *yaml.Node, p *Placement) {
				p.Spread = d.str(n, "placement.spread")
				if p.Spread != "" && !placementLabelRE.MatchString(p.Spread) {
					d.errorf(n, "placement.spread %q: name a node attribute like node.labels.zone", p.Spread)
				}
			}},
		{"constraints", "Swarm placement constraints, like node.labels.zone!=c or node.role==worker.",
			func() schema {
				return schema{"type": "array", "items": schema{"type": "string", "pattern": constraintRE.String(),
					"examples": []string{"node.role==worker"}}}
			},
			func(d *decoder, n *yaml.Node, p *Placement) {
				list, at := d.strList(n, "placement.constraints")
				for i, c := range list {
					if !constraintRE.MatchString(c) {
						d.errorf(&yaml.Node{Line: at[i].Line, Column: at[i].Col}, "placement constraint %q: write ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE, like node.labels.zone==a", c)
					}
				}
				p.Constraints = list
			}},
	}
}

// placementLabelRE and constraintRE accept what Swarm's placement takes: node
// attributes (node.labels.zone, node.role, engine.labels.x) and KEY==VALUE / KEY!=VALUE.
var (
	placementLabelRE = regexp.MustCompile(`^(node|engine)\.[A-Za-z0-9_.-]+$`)
	constraintRE     = regexp.MustCompile(`^\s*(node|engine)\.[A-Za-z0-9_.-]+\s*(==|!=)\s*[^=!\s][^\s]*\s*$`)
)

func healthFields() []field[Health] {
	return []field[Health]{
		{"path", "HTTP path checked on each instance, like /healthz. Required.", stringSchema,
			func(d *decoder, n *yaml.Node, h *Health) { h.Path = d.str(n, "health.path") }},
		{"interval", "Time between checks. Default: 1s.", durationSchema,
			func(d *decoder, n *yaml.Node, h *Health) { h.Interval = d.duration(n, "health.interval") }},
		{"timeout", "Longest a check may take. Default: 2s.", durationSchema,
			func(d *decoder, n *yaml.Node, h *Health) { h.Timeout = d.duration(n, "health.timeout") }},
		{"healthy_threshold", "Passing checks in a row that make an instance healthy. Default: 1.", integerSchema(1, 100),
			func(d *decoder, n *yaml.Node, h *Health) {
				h.HealthyThreshold = d.integer(n, "health.healthy_threshold", 1, 100)
			}},
		{"unhealthy_threshold", "Failing checks in a row that make an instance unhealthy. Default: 3.", integerSchema(1, 100),
			func(d *decoder, n *yaml.Node, h *Health) {
				h.UnhealthyThreshold = d.integer(n, "health.unhealthy_threshold", 1, 100)
			}},
	}
}

func resourcesFields() []field[Resources] {
	return []field[Resources]{
		{"cpu", "CPUs, like 0.5 or 2. Default: no limit.", func() schema { return schema{"type": []string{"string", "number"}} },
			func(d *decoder, n *yaml.Node, r *Resources) { r.CPU = d.str(n, "resources.cpu") }},
		{"memory", "Memory, like 256m or 1g. Default: no limit.", stringSchema,
			func(d *decoder, n *yaml.Node, r *Resources) { r.Memory = d.str(n, "resources.memory") }},
	}
}
