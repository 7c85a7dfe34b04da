package secret

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/drover-cd/drover/store"
)

// Resolve returns "NAME=VALUE" for each of req.Names, in order, from the most specific
// scope that holds it for req; a secret no scope holds is an error wrapping ErrMissing,
// one kept from req.Branch an error wrapping ErrWithheld. Each error names the secret,
// what asked (req.For), the project and the environment, and says what to do; several
// are joined.
//
// The scopes, most specific first: the project in the environment, every project in
// the environment, the project, every project. Without an environment only the last
// two count; in an environment with an approval role (req.Approval) only the first two,
// and only for runs of the project's default branch. A value whose branch glob does
// not match req.Branch is passed over. Runs of a followed repository's other branches
// than its default get nothing unless req.BranchSecrets.
func (v *Vault) Resolve(ctx context.Context, req Request) ([]string, error) {
	if len(req.Names) == 0 {
		return nil, nil
	}
	if req.External && req.Branch != req.DefaultBranch && !req.BranchSecrets {
		return nil, withheldFromBranches(req)
	}
	v.swapping.RLock()
	defer v.swapping.RUnlock()
	ss, err := v.store.Secrets(ctx, store.SecretFilter{Project: req.Project, Global: true})
	if err != nil {
		return nil, fmt.Errorf("secrets for %s: %w", req.For, err)
	}
	byKey := map[Key]*store.Secret{}
	for _, s := range ss {
		byKey[Key{Name: s.Name, Project: s.Project, Environment: s.Environment}] = s
	}
	var out []string
	var errs []error
	for _, name := range req.Names {
		s, why := pick(req, name, byKey)
		if s == nil {
			errs = append(errs, notResolved(req, name, why))
			continue
		}
		k := Key{Name: s.Name, Project: s.Project, Environment: s.Environment}
		value, err := v.keys.decrypt(k, s.Ciphertext, s.KeyID)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s needs secret %s: %w", req.For, name, err))
			continue
		}
		out = append(out, name+"="+string(value))
		clear(value)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// candidates are the keys that may hold name for req, most specific first.
func candidates(req Request, name string) []Key {
	var keys []Key
	if req.Environment != "" {
		keys = append(keys, Key{name, req.Project, req.Environment}, Key{name, "", req.Environment})
	}
	if req.Approval == "" {
		keys = append(keys, Key{name, req.Project, ""}, Key{name, "", ""})
	}
	// A request without a project asks for global values only: once each.
	return slices.Compact(keys)
}

// pick returns the secret name resolves to for req, or nil and why the most specific
// value there is was passed over ("" when there is none).
func pick(req Request, name string, byKey map[Key]*store.Secret) (*store.Secret, string) {
	why := ""
	for _, k := range candidates(req, name) {
		s := byKey[k]
		if s == nil {
			continue
		}
		reason := ""
		switch {
		case s.Branch != "" && !globMatch(s.Branch, req.Branch):
			reason = fmt.Sprintf("the value for %s goes only to branches matching %q: run it from such a branch, "+
				"or set the secret again with a --branch that %s matches", scope(k), s.Branch, req.Branch)
		case req.Approval != "" && req.DefaultBranch == "":
			reason = fmt.Sprintf("in environment %s, which has approval rules (%s), secrets go only to runs of the project's default branch, "+
				"and %s's is not known: drover project set %s --default-branch BRANCH", req.Environment, req.Approval, req.Project, req.Project)
		case req.Approval != "" && req.Branch != req.DefaultBranch:
			reason = fmt.Sprintf("in environment %s, which has approval rules (%s), secrets go only to runs of the project's default branch %s",
				req.Environment, req.Approval, req.DefaultBranch)
		}
		if reason == "" {
			return s, ""
		}
		if why == "" {
			why = reason
		}
	}
	return nil, why
}

// globMatch reports whether branch matches glob (path.Match; a bad glob matches nothing).
func globMatch(glob, branch string) bool {
	ok, err := path.Match(glob, branch)
	return ok && err == nil
}

// scope says where a key holds: "project shop in environment staging", "every project".
func scope(k Key) string {
	s := "every project"
	if k.Project != "" {
		s = "project " + k.Project
	}
	if k.Environment != "" {
		s += " in environment " + k.Environment
	}
	return s
}

// asker is req.For, or what stands in for it.
func asker(req Request) string {
	if req.For != "" {
		return req.For
	}
	return "a run of " + req.Project
}

// where says which project and environment req is in.
func where(req Request) string {
	s := "project " + req.Project
	if req.Environment != "" {
		s += ", environment " + req.Environment
	}
	return s
}

// notResolved is the error for a secret name that req gets no value of: ErrWithheld
// with why when a value was passed over, else ErrMissing.
func notResolved(req Request, name, why string) error {
	if why != "" {
		return &kindError{kind: ErrWithheld, msg: fmt.Sprintf("%s needs secret %s, which is withheld from branch %s (%s): %s",
			asker(req), name, req.Branch, where(req), why)}
	}
	var tried, fix string
	switch {
	case req.Environment == "":
		tried = fmt.Sprintf("for project %s or for every project", req.Project)
		fix = fmt.Sprintf("drover secret set %s --project %s", name, req.Project)
	case req.Approval != "":
		tried = fmt.Sprintf("for project %s or every project in environment %s (it has approval rules, so values for no environment do not count there)",
			req.Project, req.Environment)
		fix = fmt.Sprintf("drover secret set %s --project %s --env %s (as an admin or a holder of the %s approval role)",
			name, req.Project, req.Environment, req.Approval)
	default:
		tried = fmt.Sprintf("for project %s or every project, in environment %s or for no environment", req.Project, req.Environment)
		fix = fmt.Sprintf("drover secret set %s --project %s --env %s", name, req.Project, req.Environment)
	}
	return &kindError{kind: ErrMissing, msg: fmt.Sprintf("%s needs secret %s, which is missing (%s): no value is set %s; set it: %s",
		asker(req), name, where(req), tried, fix)}
}

// withheldFromBranches is the error for a run of a followed repository's branch other
// than its default when the project does not let those have secrets.
func withheldFromBranches(req Request) error {
	def := "its default branch " + req.DefaultBranch
	if req.DefaultBranch == "" {
		def = "its default branch (not known yet: drover project set " + req.Project + " --default-branch BRANCH)"
	}
	noun, verb := "secret", "is"
	if len(req.Names) > 1 {
		noun, verb = "secrets", "are"
	}
	return &kindError{kind: ErrWithheld, msg: fmt.Sprintf("%s needs %s %s, which %s withheld from branch %s (%s): "+
		"the project follows an external repository, and runs of branches other than %s get no secrets; "+
		"drover project set %s --branch-secrets allows them", asker(req), noun, strings.Join(req.Names, ", "), verb, req.Branch,
		where(req), def, req.Project)}
}
