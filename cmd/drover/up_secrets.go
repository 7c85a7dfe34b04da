package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/drover-cd/drover/pipeline"
)

// upSecrets are the secrets the pipelines drover up delivers ask for: those of services
// and of steps against an environment are needed in every environment, those of other
// steps in none.
type upSecrets struct {
	inEnvs, plain []string // names, sorted, each once
}

// add notes what p asks for.
func (s *upSecrets) add(p *pipeline.Pipeline) {
	if p.Service != nil {
		s.inEnvs = append(s.inEnvs, p.Service.Secrets...)
	}
	for _, st := range p.Steps {
		if st.Environment != "" {
			s.inEnvs = append(s.inEnvs, st.Secrets...)
		} else {
			s.plain = append(s.plain, st.Secrets...)
		}
	}
	slices.Sort(s.inEnvs)
	slices.Sort(s.plain)
	s.inEnvs, s.plain = slices.Compact(s.inEnvs), slices.Compact(s.plain)
}

// upEnvironments are the permanent environments of the system in folders: what its
// environments.yml declares, else staging and production.
func upEnvironments(projects []upProject) ([]string, error) {
	for _, p := range projects {
		if p.name != SystemProject {
			continue
		}
		data, err := os.ReadFile(filepath.Join(p.dir, "environments.yml"))
		if os.IsNotExist(err) {
			break
		}
		if err != nil {
			return nil, err
		}
		f, err := pipeline.ParseEnvironments(filepath.Join(p.dir, "environments.yml"), data)
		if err != nil {
			return nil, badInput(err)
		}
		var names []string
		for _, e := range f.List {
			names = append(names, e.Name)
		}
		return names, nil
	}
	return []string{"staging", "production"}, nil
}

// secretJSON is what the API says of a secret: never its value.
type secretJSON struct {
	Name    string `json:"name"`
	Project string `json:"project"`
	Env     string `json:"env"`
}

// seed gives every secret the pipelines ask for that nobody has set a random value of
// its own: a global one per environment (so two services share it, and staging's is not
// production's), and one for no environment where plain steps ask. It says what it set.
func (s *upSecrets) seed(c *clientOptions, envs []string, out io.Writer) error {
	var have []secretJSON
	if err := c.call(http.MethodGet, "/api/v1/secrets?all=1", nil, &have); err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	set := func(name, env string) (bool, error) {
		if slices.ContainsFunc(have, func(h secretJSON) bool { return h.Name == name && h.Project == "" && h.Env == env }) {
			return false, nil
		}
		body := map[string]string{"value": rand.Text(), "env": env}
		return true, c.call(http.MethodPut, "/api/v1/secrets/"+url.PathEscape(name), body, nil)
	}
	report := func(name string, envs []string) {
		if len(envs) > 0 {
			fmt.Fprintf(out, "%-10s random value of its own in %s (drover secret set %s --env ENV to choose one)\n",
				name, strings.Join(envs, ", "), name)
		}
	}
	for _, name := range s.inEnvs {
		var made []string
		for _, env := range envs {
			ok, err := set(name, env)
			if err != nil {
				return fmt.Errorf("set %s for %s: %w", name, env, err)
			}
			if ok {
				made = append(made, env)
			}
		}
		report(name, made)
	}
	for _, name := range s.plain {
		if ok, err := set(name, ""); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		} else if ok {
			report(name, []string{"steps with no environment"})
		}
	}
	return nil
}
