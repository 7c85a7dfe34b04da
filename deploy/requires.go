package deploy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/drover-cd/drover/internal/words"
)

// RequiresError is why a deploy was refused: the service requires others that do not
// run in the environment, so its <NAME>_URL calls would fail (a 502 from the proxy).
type RequiresError struct {
	Service, Env string
	Missing      []string
}

func (e *RequiresError) Error() string {
	do, them := "do", "them"
	if len(e.Missing) == 1 {
		do, them = "does", "it"
	}
	return fmt.Sprintf("%s requires %s, which %s not run in %s: deploy %s there first "+
		"(drover promote --from ENV --to %s --all promotes a set in the order it needs), or deploy anyway with --without-requires",
		e.Service, words.And(e.Missing), do, e.Env, them, e.Env)
}

// Unwrap makes a RequiresError an ErrBadRequest: the caller can fix it.
func (e *RequiresError) Unwrap() error { return ErrBadRequest }

// Missing returns which of the services requires names run nowhere in env: none of
// its releases took the traffic there.
func (m *Manager) Missing(env string, requires []string) []string {
	var out []string
	for _, name := range requires {
		if !m.runs(env, name) {
			out = append(out, name)
		}
	}
	return out
}

// runs reports whether a release of service name took the traffic in env.
func (m *Manager) runs(env, name string) bool {
	s := m.existing(env, name)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current != nil && !s.gone
}

// deploying reports whether a deploy of service name to env is under way.
func (m *Manager) deploying(env, name string) bool {
	s := m.existing(env, name)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deploying > 0
}

// checkRequires refuses, with a *RequiresError, to deploy service into env while a
// service it requires runs nowhere there. A required service whose own deploy to env is
// under way (a set promoted at once, the approvals of a set given together) is waited
// for, saying so, as long as some deploy of one of them is under way.
func (m *Manager) checkRequires(ctx context.Context, env, service string, requires []string, log func(string)) error {
	said := ""
	for {
		missing := m.Missing(env, requires)
		if len(missing) == 0 {
			return nil
		}
		busy := slices.DeleteFunc(slices.Clone(missing), func(name string) bool { return !m.deploying(env, name) })
		if len(busy) == 0 {
			return &RequiresError{Service: service, Env: env, Missing: missing}
		}
		is := "they are"
		if len(busy) == 1 {
			is = "it is"
		}
		if line := fmt.Sprintf("waiting for %s: %s being deployed to %s", words.And(busy), is, env); line != said {
			log(line)
			said = line
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
