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
	return s.resolve(ctx, secret.Request{Names: req.Names, Project: run.Project, Environment: env, Branch: run.Branch,
		For: fmt.Sprintf("step %q of %s #%d", req.Step, run.Project, run.Number)})
}

// forService is deploy.Config.Secrets.
func (s *secretScopes) forService(ctx context.Context, req deploy.SecretsRequest) ([]string, error) {
	return s.resolve(ctx, secret.Request{Names: req.Names, Project: req.Project, Environment: req.Env, Branch: req.Branch, For: req.For})
}

// resolve completes req with what the store and the deployments know, then resolves it.
func (s *secretScopes) resolve(ctx context.Context, req secret.Request) ([]string, error) {
	p, err := s.st.Project(ctx, req.Project)
	if err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", req.Project, err)
	}
	req.DefaultBranch, req.External, req.BranchSecrets = p.DefaultBranch, p.URL != "", p.BranchSecrets
	if req.Environment != "" {
		if req.Approval, _, err = s.manager.ApprovalRole(ctx, req.Environment); err != nil {
			return nil, fmt.Errorf("the approval role of %s: %w", req.Environment, err) // when unsure, give nothing
		}
	}
	return s.vault.Resolve(ctx, req)
}
