package main

import (
	"context"
	"fmt"

	"github.com/drover-cd/drover/deploy"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/secret"
	"github.com/drover-cd/drover/store"
)

// secretScopes answers the runner's steps and the deployments' services when they ask
// for secrets: it finds the environment, its approval role and the project's default
// branch, and lets the vault decide.
type secretScopes struct {
	st            store.Store
	vault         *secret.Vault
	manager       *deploy.Manager
	ephemeralBase string // --ephemeral-base
}

// forStep is runner.Config.Secrets.
func (s *secretScopes) forStep(ctx context.Context, run *store.Run, req engine.SecretRequest) ([]string, error) {
	env := req.Environment
	if env != "" {
		env = s.manager.StepScope(env, s.ephemeralBase)
	}
	role, err := s.approvalRole(ctx, env)
	if err != nil {
		return nil, err
	}
	if role != "" {
		if err := s.approved(ctx, run, req.Step, env, role); err != nil {
			return nil, err
		}
	}
	return s.resolve(ctx, secret.Request{Names: req.Names, Project: run.Project, Environment: env, Approval: role,
		Branch: run.Branch, For: fmt.Sprintf("step %q of %s #%d", req.Step, run.Project, run.Number)})
}

// approved refuses a step of run the secrets of env, whose approval role is role,
// unless an approval: step of the run asking for that role was approved: a script could
// print them in a form no masker knows, so they go to a run only once the people who
// guard env let it through (as deploy: steps there do).
func (s *secretScopes) approved(ctx context.Context, run *store.Run, step, env, role string) error {
	approvals, err := s.st.Approvals(ctx, run.ID)
	if err != nil {
		return err
	}
	for _, a := range approvals {
		if a.Role == role && a.Decision == "approved" {
			return nil
		}
	}
	return fmt.Errorf("step %q of %s #%d asks for secrets of %s, which has approval rules: they go to a step only after an approval: {role: %s} step of the run was approved; add one before it",
		step, run.Project, run.Number, env, role)
}

// forService is deploy.Config.Secrets.
func (s *secretScopes) forService(ctx context.Context, req deploy.SecretsRequest) ([]string, error) {
	role, err := s.approvalRole(ctx, req.Env)
	if err != nil {
		return nil, err
	}
	return s.resolve(ctx, secret.Request{Names: req.Names, Project: req.Project, Environment: req.Env, Approval: role,
		Branch: req.Branch, For: req.For})
}

// approvalRole is the approval role deploys to env need; "" for none, and for no
// environment.
func (s *secretScopes) approvalRole(ctx context.Context, env string) (string, error) {
	if env == "" {
		return "", nil
	}
	role, _, err := s.manager.ApprovalRole(ctx, env)
	if err != nil {
		return "", fmt.Errorf("the approval role of %s: %w", env, err) // when unsure, give nothing
	}
	return role, nil
}

// resolve completes req with what the store knows of its project, then resolves it.
func (s *secretScopes) resolve(ctx context.Context, req secret.Request) ([]string, error) {
	p, err := s.st.Project(ctx, req.Project)
	if err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", req.Project, err)
	}
	req.DefaultBranch, req.External, req.BranchSecrets = p.DefaultBranch, p.URL != "", p.BranchSecrets
	return s.vault.Resolve(ctx, req)
}
