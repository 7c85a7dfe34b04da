package engine

import (
	"strconv"
	"strings"

	"github.com/drover-cd/drover/pipeline"
)

// Vars are the facts of a run that every step sees as DROVER_* variables.
type Vars struct {
	Run       int    // DROVER_RUN: the run's number
	Branch    string // DROVER_BRANCH
	Commit    string // DROVER_COMMIT: full hash; "" outside a git checkout
	Event     string // DROVER_EVENT: push, pull_request, tag, manual or cron
	Workspace string // DROVER_WORKSPACE: absolute path of the workspace
}

// environ is an ordered set of variables: later sets of a name replace its value in place.
type environ struct {
	index map[string]int
	list  []string // KEY=VALUE
}

func newEnviron(base []string) *environ {
	e := &environ{index: make(map[string]int, len(base)+16), list: make([]string, 0, len(base)+16)}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			e.set(k, v)
		}
	}
	return e
}

func (e *environ) set(k, v string) {
	if i, ok := e.index[k]; ok {
		e.list[i] = k + "=" + v
		return
	}
	e.index[k] = len(e.list)
	e.list = append(e.list, k+"="+v)
}

func (e *environ) get(k string) string {
	if i, ok := e.index[k]; ok {
		return e.list[i][len(k)+1:]
	}
	return ""
}

// expand replaces ${NAME} with the value of NAME set so far (empty when unset) and $${
// with a literal ${. Other $ signs are left for the shell.
func (e *environ) expand(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(e.get(s[i+2 : i+end]))
		s = s[i+end+1:]
	}
}

func (e *environ) apply(vars []pipeline.EnvVar) {
	for _, v := range vars {
		e.set(v.Name, e.expand(v.Value))
	}
}

// stepEnv composes a step's environment, each layer over the one before: the base (the
// host's, for local processes), the built-ins, the pipeline's env, the step's env, the
// matrix values, the overrides (drover run --env), and the built-ins again so that no
// layer can fake them. Values may use ${NAME} of any layer before theirs.
func stepEnv(base []string, p *pipeline.Pipeline, n *pipeline.Node, vars Vars, overrides []string, attempt int) []string {
	e := newEnviron(base)
	builtins := []pipeline.EnvVar{
		{Name: "CI", Value: "true"},
		{Name: "DROVER", Value: "true"},
		{Name: "DROVER_RUN", Value: strconv.Itoa(vars.Run)},
		{Name: "DROVER_STEP", Value: n.Name},
		{Name: "DROVER_ATTEMPT", Value: strconv.Itoa(attempt)},
		{Name: "DROVER_BRANCH", Value: vars.Branch},
		{Name: "DROVER_COMMIT", Value: vars.Commit},
		{Name: "DROVER_EVENT", Value: vars.Event},
		{Name: "DROVER_WORKSPACE", Value: vars.Workspace},
	}
	for _, v := range builtins {
		e.set(v.Name, v.Value)
	}
	e.apply(p.Env)
	e.apply(n.Step.Env)
	e.apply(n.Matrix)
	for _, kv := range overrides {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.set(k, e.expand(v))
		}
	}
	for _, v := range builtins {
		e.set(v.Name, v.Value)
	}
	return e.list
}
