package pipeline

import (
	"path"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v4"
)

// The field tables below are the whole vocabulary of drover.yml. Each field's doc says
// what it does and its default; `drover schema` publishes them.

func pipelineFields() []field[Pipeline] {
	return []field[Pipeline]{
		{"service", "How this project's release runs when it is deployed. Optional.",
			func() schema { return objectSchema(serviceFields()) },
			func(d *decoder, n *yaml.Node, p *Pipeline) {
				p.Service = &Service{Replicas: 1}
				decodeMapping(d, n, "service", serviceFields(), p.Service)
			}},
		{"env", "Variables set in every step, as NAME: value. Values may use ${NAME}. Default: none.",
			envSchema,
			func(d *decoder, n *yaml.Node, p *Pipeline) { p.Env = d.env(n, "env") }},
		{"steps", "The steps of the pipeline, in order. Required.",
			func() schema { return schema{"type": "array", "minItems": 1, "items": objectSchema(stepFields())} },
			func(d *decoder, n *yaml.Node, p *Pipeline) { p.Steps = d.steps(n) }},
		{"auto_cancel", "A new run of a branch cancels the runs of that branch still going. Default: false.",
			booleanSchema,
			func(d *decoder, n *yaml.Node, p *Pipeline) { p.AutoCancel = d.boolean(n, "auto_cancel") }},
		{"agent", "Which agents run the steps, when the server has agents: `labels:` every such agent has. A step's own agent: labels go over these. Default: any agent.",
			func() schema { return objectSchema(agentFields()) },
			func(d *decoder, n *yaml.Node, p *Pipeline) { p.Agent = d.agent(n, "agent") }},
	}
}

// agentFields are the fields of agent:, at the top and in a step.
func agentFields() []field[map[string]string] {
	return []field[map[string]string]{
		{"labels", "NAME: value pairs an agent must have (drover agent run --labels), e.g. {os: linux, docker: \"true\"}.",
			func() schema {
				return schema{"type": "object", "propertyNames": schema{"pattern": labelName.String()},
					"additionalProperties": schema{"type": []string{"string", "number", "boolean"}}}
			},
			func(d *decoder, n *yaml.Node, m *map[string]string) { *m = d.labels(n, "agent.labels") }},
	}
}

func stepFields() []field[Step] {
	return []field[Step]{
		{"name", "The step's name, unique in the pipeline. Required.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Step) {
				before := len(d.errs)
				s.Name = d.str(n, "name")
				d.nameFailed = len(d.errs) > before
			}},
		{"run", "Shell script run with `sh -e` in the workspace.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Run = d.str(n, "run") }},
		{"needs", "Steps that must finish first. Default: the step written above; [] starts at once.", stringListSchema,
			func(d *decoder, n *yaml.Node, s *Step) {
				s.NeedsSet = true
				s.Needs, s.NeedsPos = d.strList(n, "needs")
			}},
		{"env", "Variables for this step, over the pipeline's env. Values may use ${NAME}.", envSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Env = d.env(n, "env") }},
		{"when", "Conditions for running the step. Default: run when every step before it succeeded.",
			func() schema { return objectSchema(whenFields()) },
			func(d *decoder, n *yaml.Node, s *Step) { decodeMapping(d, n, "when", whenFields(), &s.When) }},
		{"matrix", "NAME: [values] pairs; every combination runs as its own step, named like `test (GOARCH=arm64)`.",
			func() schema {
				return schema{"type": "object", "propertyNames": schema{"pattern": envName.String()},
					"additionalProperties": schema{"type": "array", "minItems": 1,
						"items": schema{"type": []string{"string", "number", "boolean"}}}}
			},
			func(d *decoder, n *yaml.Node, s *Step) { s.Matrix = d.matrix(n) }},
		{"retry", "Extra attempts after a failure. Default: 0.", integerSchema(0, 10),
			func(d *decoder, n *yaml.Node, s *Step) { s.Retry = d.integer(n, "retry", 0, 10) }},
		{"timeout", "Longest time one attempt may take, like 10m; then the step's processes are killed. Default: none.",
			durationSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Timeout = d.duration(n, "timeout") }},
		{"allow_failure", "A failure of this step does not fail the run. Default: false.", booleanSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.AllowFailure = d.boolean(n, "allow_failure") }},
		{"secrets", "Secrets the step gets as environment variables of the same names, e.g. [DB_PASSWORD]; their values are masked in its output. A missing one fails the step before it starts. Default: none.",
			secretsSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Secrets = d.secrets(n, "secrets") }},
		{"reports", "Test and coverage reports the step writes.",
			func() schema { return objectSchema(reportsFields()) },
			func(d *decoder, n *yaml.Node, s *Step) { decodeMapping(d, n, "reports", reportsFields(), &s.Reports) }},
		{"gates", "Thresholds the step's reports must meet, or the step fails.",
			func() schema { return objectSchema(gatesFields()) },
			func(d *decoder, n *yaml.Node, s *Step) { decodeMapping(d, n, "gates", gatesFields(), &s.Gates) }},
		{"artifacts", "Workspace paths published, content-addressed, as the run's artifact.", stringListSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Artifacts = d.artifacts(n) }},
		{"agent", "Which agents may run this step: `labels:` the agent must have, over the pipeline's agent: labels. A step whose labels the run's agent lacks runs on another agent, from a fresh checkout plus the artifacts of the steps it needs. Default: the pipeline's.",
			func() schema { return objectSchema(agentFields()) },
			func(d *decoder, n *yaml.Node, s *Step) { s.Agent = d.agent(n, "agent") }},
		{"image", "Container image the script runs in (Docker backend).", stringSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Image = d.str(n, "image") }},
		{"services", "Sidecar containers started beside the step, reachable by name (Docker backend).",
			func() schema { return schema{"type": "array", "items": objectSchema(sidecarFields())} },
			func(d *decoder, n *yaml.Node, s *Step) { s.Services = d.sidecars(n) }},
		{"build", "Build a container image from the workspace and publish it as the run's image.",
			func() schema { return objectSchema(buildFields()) },
			func(d *decoder, n *yaml.Node, s *Step) {
				s.Build = &Build{Context: ".", Dockerfile: "Dockerfile"}
				decodeMapping(d, n, "build", buildFields(), s.Build)
			}},
		{"deploy", "Deploy this run's release to the named environment (server only).", stringSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Deploy = d.str(n, "deploy") }},
		{"approval", "Hold the run until a person with the role approves (server only).",
			func() schema { return objectSchema(approvalFields()) },
			func(d *decoder, n *yaml.Node, s *Step) {
				s.Approval = &Approval{}
				if decodeMapping(d, n, "approval", approvalFields(), s.Approval)["role"] == nil {
					d.errorf(n, "approval needs a role, like approval: {role: release-manager}")
				}
			}},
		{"environment", "Run the step against an environment, e.g. `ephemeral` for a complete throw-away one (server only).",
			stringSchema,
			func(d *decoder, n *yaml.Node, s *Step) { s.Environment = d.str(n, "environment") }},
	}
}

func whenFields() []field[When] {
	return []field[When]{
		{"branch", "Branch name globs, like main or release/*. Default: any branch.", stringOrListSchema,
			func(d *decoder, n *yaml.Node, w *When) { w.Branch = d.globs(n, "when.branch") }},
		{"event", "Events: push, pull_request, tag, manual, cron. Default: any event.",
			enumSchema(events...),
			func(d *decoder, n *yaml.Node, w *When) { w.Event = d.enum(n, "when.event", events) }},
		{"path", "Globs of changed files (** crosses folders); the step runs when one matches. Default: any change.",
			stringOrListSchema,
			func(d *decoder, n *yaml.Node, w *When) { w.Path = d.globs(n, "when.path") }},
		{"status", "success: only while nothing failed (default); failure: only after a failure; always: also after a failure or cancel.",
			enumSchema(string(StatusSuccess), string(StatusFailure), string(StatusAlways)),
			func(d *decoder, n *yaml.Node, w *When) { w.Status = d.status(n) }},
	}
}

// events are the values of when.event.
var events = []string{"push", "pull_request", "tag", "manual", "cron"}

// IsEvent reports whether s is an event when.event knows.
func IsEvent(s string) bool { return indexOf(events, s) >= 0 }

// EventNames lists the events, for messages.
func EventNames() string { return strings.Join(events, ", ") }

func reportsFields() []field[Reports] {
	return []field[Reports]{
		{"junit", "JUnit XML files: a glob or a list of globs relative to the workspace.", stringOrListSchema,
			func(d *decoder, n *yaml.Node, r *Reports) {
				var at []Pos
				r.JUnit, at = d.strList(n, "reports.junit")
				for i, g := range r.JUnit {
					if _, err := filepath.Match(g, ""); err != nil || escapes(g) {
						d.errs = append(d.errs, &Error{File: d.file, Line: at[i].Line, Col: at[i].Col,
							Msg: "reports.junit: " + quoteBad(g, "is not a valid glob inside the workspace")})
					}
				}
			}},
		{"coverage", "A Go cover profile or Cobertura XML file.", stringSchema,
			func(d *decoder, n *yaml.Node, r *Reports) {
				if r.Coverage = d.str(n, "reports.coverage"); escapes(r.Coverage) {
					d.errorf(n, "reports.coverage: %s", quoteBad(r.Coverage, "is outside the workspace"))
				}
			}},
	}
}

func gatesFields() []field[Gates] {
	return []field[Gates]{
		{"coverage", "Minimum coverage percent, 0 to 100. Default: not checked.", numberSchema(0, 100),
			func(d *decoder, n *yaml.Node, g *Gates) { v := d.number(n, "gates.coverage", 0, 100); g.Coverage = &v }},
		{"failures", "Most failed tests allowed. Default: 0 when the step has a JUnit report.", integerSchema(0, 1<<30),
			func(d *decoder, n *yaml.Node, g *Gates) {
				v := d.integer(n, "gates.failures", 0, 1<<30)
				g.Failures = &v
			}},
	}
}

func sidecarFields() []field[Sidecar] {
	return []field[Sidecar]{
		{"name", "Host name the step reaches the sidecar by. Required.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Sidecar) { s.Name = d.str(n, "services.name") }},
		{"image", "Image of the sidecar. Required.", stringSchema,
			func(d *decoder, n *yaml.Node, s *Sidecar) { s.Image = d.str(n, "services.image") }},
		{"env", "Variables of the sidecar.", envSchema,
			func(d *decoder, n *yaml.Node, s *Sidecar) { s.Env = d.env(n, "services.env") }},
		{"command", "Command overriding the image's.", stringOrListSchema,
			func(d *decoder, n *yaml.Node, s *Sidecar) { s.Command, _ = d.strList(n, "services.command") }},
	}
}

func buildFields() []field[Build] {
	return []field[Build]{
		{"context", "Build context folder. Default: the workspace (.).", stringSchema,
			func(d *decoder, n *yaml.Node, b *Build) { b.Context = d.str(n, "build.context") }},
		{"dockerfile", "Dockerfile path inside the context. Default: Dockerfile.", stringSchema,
			func(d *decoder, n *yaml.Node, b *Build) { b.Dockerfile = d.str(n, "build.dockerfile") }},
		{"tags", "Extra tags for the image, beside the run number (e.g. latest); not a number or a release tag (r12).", stringListSchema,
			func(d *decoder, n *yaml.Node, b *Build) { b.Tags = d.imageTags(n) }},
	}
}

func approvalFields() []field[Approval] {
	return []field[Approval]{
		{"role", "Role whose holders may approve. Required.", stringSchema,
			func(d *decoder, n *yaml.Node, a *Approval) { a.Role = d.str(n, "approval.role") }},
		{"timeout", "Reject when nobody decided within this time, like 24h. Default: wait for ever.", durationSchema,
			func(d *decoder, n *yaml.Node, a *Approval) { a.Timeout = d.duration(n, "approval.timeout") }},
	}
}

func quoteBad(s, why string) string { return `"` + s + `" ` + why }

// escapes reports whether a workspace-relative path is absolute or leaves the workspace.
func escapes(p string) bool {
	if p == "" {
		return false
	}
	c := path.Clean(filepath.ToSlash(p))
	return path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../")
}

func (d *decoder) globs(n *yaml.Node, what string) []string {
	list, at := d.strList(n, what)
	for i, g := range list {
		if !doublestar.ValidatePattern(g) {
			d.errs = append(d.errs, &Error{File: d.file, Line: at[i].Line, Col: at[i].Col,
				Msg: what + ": " + quoteBad(g, "is not a valid glob")})
		}
	}
	return list
}

func (d *decoder) enum(n *yaml.Node, what string, allowed []string) []string {
	list, at := d.strList(n, what)
	for i, v := range list {
		if indexOf(allowed, v) < 0 {
			d.errs = append(d.errs, &Error{File: d.file, Line: at[i].Line, Col: at[i].Col,
				Msg: what + ": " + quoteBad(v, "is not one of "+strings.Join(allowed, ", ")) + d.suggestion(v, allowed)})
		}
	}
	return list
}

// status folds when.status into one value: success and failure together mean always.
func (d *decoder) status(n *yaml.Node) Status {
	list := d.enum(n, "when.status", []string{"success", "failure", "always"})
	var ok, fail bool
	for _, v := range list {
		ok = ok || v == "success" || v == "always"
		fail = fail || v == "failure" || v == "always"
	}
	switch {
	case ok && fail:
		return StatusAlways
	case fail:
		return StatusFailure
	}
	return StatusSuccess
}

func (d *decoder) artifacts(n *yaml.Node) []string {
	list, at := d.strList(n, "artifacts")
	for i, p := range list {
		if p == "" || escapes(p) {
			d.errs = append(d.errs, &Error{File: d.file, Line: at[i].Line, Col: at[i].Col,
				Msg: "artifacts: " + quoteBad(p, "is not a path inside the workspace")})
		}
	}
	return list
}

// maxMatrix bounds how many steps one matrix may expand to.
const maxMatrix = 256

func (d *decoder) matrix(n *yaml.Node) []MatrixAxis {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "matrix must be a mapping of NAME: [values], not %s", kindName(n))
		return nil
	}
	var axes []MatrixAxis
	combos := 1
	for _, p := range d.pairs(n) {
		if !envName.MatchString(p.key.Value) {
			d.errorf(p.key, "matrix: %q is not a variable name", p.key.Value)
			continue
		}
		values, _ := d.strList(p.value, "matrix."+p.key.Value)
		if len(values) == 0 {
			d.errorf(p.value, "matrix.%s needs at least one value", p.key.Value)
			continue
		}
		if combos *= len(values); combos > maxMatrix {
			d.errorf(p.key, "matrix has more than %d combinations", maxMatrix)
			return nil
		}
		axes = append(axes, MatrixAxis{Name: p.key.Value, Values: values})
	}
	return axes
}

func (d *decoder) sidecars(n *yaml.Node) []Sidecar {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "services must be a list, not %s", kindName(n))
		return nil
	}
	out := make([]Sidecar, 0, len(n.Content))
	for _, item := range n.Content {
		item = resolve(item)
		var s Sidecar
		got := decodeMapping(d, item, "services entry", sidecarFields(), &s)
		if item.Kind == yaml.MappingNode && (got["name"] == nil || got["image"] == nil) {
			d.errorf(item, "a service needs a name and an image")
		}
		out = append(out, s)
	}
	return out
}
