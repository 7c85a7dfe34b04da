package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/drover-cd/drover/mask"
)

// SecretsRequest is a service's instance asking for its service.secrets.
type SecretsRequest struct {
	Names   []string
	Project string
	// Env is the environment whose secrets count: where the instance runs, or the
	// environment an ephemeral one copies.
	Env    string
	Branch string // the branch of the run the release came from
	For    string // "service web in staging", for error messages
}

// secrets resolves the secrets s's instances of t ask for: their KEY=VALUE lines and a
// masker of their values for the instances' output. No secrets: nil, nil.
func (s *service) secrets(ctx context.Context, t *target) ([]string, *mask.Masker, error) {
	return s.m.serviceSecrets(ctx, s.env, s.name, t)
}

// serviceSecrets resolves the secrets service name's instances of t in env ask for, as
// secrets does; also for instances a previous server started (MaskerOf).
func (m *Manager) serviceSecrets(ctx context.Context, env, name string, t *target) ([]string, *mask.Masker, error) {
	names := t.service.Secrets
	if len(names) == 0 {
		return nil, nil, nil
	}
	if m.cfg.Secrets == nil {
		return nil, nil, fmt.Errorf("service %s asks for secrets (%s), and this server keeps none", name, strings.Join(names, ", "))
	}
	vars, err := m.cfg.Secrets(ctx, SecretsRequest{Names: names, Project: t.rel.Project, Env: m.scopeOf(env),
		Branch: t.rel.Branch, For: fmt.Sprintf("service %s in %s", name, env)})
	if err != nil {
		return nil, nil, err
	}
	return vars, maskerOf(vars), nil
}

// maskerOf hides the values of KEY=VALUE lines.
func maskerOf(vars []string) *mask.Masker {
	values := make([]string, len(vars))
	for i, kv := range vars {
		_, values[i], _ = strings.Cut(kv, "=")
	}
	return mask.New(values)
}
