package secret

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// resolveVault holds, for project shop, names set in these scopes (value: the scope):
//
//	ALL4     shop/staging, global/staging, shop, global
//	GE_P_G   global/staging, shop, global
//	P_G      shop, global
//	G        global
//	OTHER    web (another project), web/staging
func resolveVault(t *testing.T) *testVault {
	v := newTestVault(t)
	for _, s := range []struct{ name, project, env string }{
		{"ALL4", "shop", "staging"}, {"ALL4", "", "staging"}, {"ALL4", "shop", ""}, {"ALL4", "", ""},
		{"GE_P_G", "", "staging"}, {"GE_P_G", "shop", ""}, {"GE_P_G", "", ""},
		{"P_G", "shop", ""}, {"P_G", "", ""},
		{"G", "", ""},
		{"OTHER", "web", ""}, {"OTHER", "web", "staging"},
	} {
		k := Key{Name: s.name, Project: s.project, Environment: s.env}
		v.set(t, k, scope(k), "")
	}
	return v
}

// values resolves req and returns the values in order, or fails the test.
func values(t *testing.T, v *testVault, req Request) []string {
	t.Helper()
	got, err := v.Resolve(t.Context(), req)
	if err != nil {
		t.Fatalf("Resolve(%+v): %v", req, err)
	}
	return got
}

func TestResolvePicksTheMostSpecificScope(t *testing.T) {
	v := resolveVault(t)
	names := []string{"ALL4", "GE_P_G", "P_G", "G"}
	for _, c := range []struct {
		what string
		req  Request
		want []string
	}{
		{"in an environment", Request{Project: "shop", Environment: "staging", Branch: "feature"}, []string{
			"ALL4=project shop in environment staging", "GE_P_G=every project in environment staging",
			"P_G=project shop", "G=every project"}},
		{"in no environment", Request{Project: "shop", Branch: "feature"}, []string{
			"ALL4=project shop", "GE_P_G=project shop", "P_G=project shop", "G=every project"}},
		{"in an environment with no values of its own", Request{Project: "shop", Environment: "production", Branch: "x"}, []string{
			"ALL4=project shop", "GE_P_G=project shop", "P_G=project shop", "G=every project"}},
		{"for another project", Request{Project: "web", Environment: "staging", Branch: "x"}, []string{
			"ALL4=every project in environment staging", "GE_P_G=every project in environment staging",
			"P_G=every project", "G=every project"}},
	} {
		c.req.Names, c.req.DefaultBranch = names, "main"
		if got := values(t, v, c.req); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.what, got, c.want)
		}
	}
	// In the order asked, each once as asked.
	got := values(t, v, Request{Names: []string{"G", "OTHER", "ALL4"}, Project: "web", Branch: "main"})
	if want := []string{"G=every project", "OTHER=project web", "ALL4=every project"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, err := v.Resolve(t.Context(), Request{Project: "shop"}); got != nil || err != nil {
		t.Errorf("asking for nothing: %q, %v", got, err)
	}
}

// In an environment with approval rules only its own values count, and only runs of
// the default branch get them.
func TestResolveInAnEnvironmentWithApprovalRules(t *testing.T) {
	v := resolveVault(t)
	req := Request{Names: []string{"ALL4", "GE_P_G"}, Project: "shop", Environment: "staging", Approval: "release-manager",
		Branch: "main", DefaultBranch: "main", For: `step "migrate" of shop #3`}
	got := values(t, v, req)
	if want := []string{"ALL4=project shop in environment staging", "GE_P_G=every project in environment staging"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	// A project-wide value never counts there: missing, and the fix is an
	// environment's value.
	req.Names = []string{"P_G"}
	_, err := v.Resolve(t.Context(), req)
	if !errors.Is(err, ErrMissing) || errors.Is(err, ErrWithheld) {
		t.Fatalf("a project-wide value in an environment with approval rules: %v", err)
	}
	for _, part := range []string{"P_G", `step "migrate" of shop #3`, "shop", "staging", "missing",
		"drover secret set P_G --project shop --env staging", "release-manager"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error does not say %q: %v", part, err)
		}
	}

	// Another branch gets nothing from there.
	req.Names, req.Branch = []string{"ALL4"}, "feature"
	_, err = v.Resolve(t.Context(), req)
	if !errors.Is(err, ErrWithheld) || !strings.Contains(err.Error(), "default branch main") || !strings.Contains(err.Error(), "feature") {
		t.Errorf("a feature branch in an environment with approval rules: %v", err)
	}
	// Nor does any branch while the default one is not known.
	req.Branch, req.DefaultBranch = "main", ""
	_, err = v.Resolve(t.Context(), req)
	if !errors.Is(err, ErrWithheld) || !strings.Contains(err.Error(), "drover project set shop --default-branch") {
		t.Errorf("an unknown default branch in an environment with approval rules: %v", err)
	}
}

func TestResolveFiltersByBranch(t *testing.T) {
	v := newTestVault(t)
	v.set(t, Key{Name: "DEPLOY_KEY", Project: "shop", Environment: "staging"}, "release-only", "release/*")
	v.set(t, Key{Name: "DEPLOY_KEY", Project: "shop"}, "any-branch", "")
	v.set(t, Key{Name: "MAIN_ONLY", Project: "shop"}, "main-only", "main")
	req := func(branch string, names ...string) Request {
		return Request{Names: names, Project: "shop", Environment: "staging", Branch: branch, DefaultBranch: "main", For: "service web"}
	}
	for branch, want := range map[string]string{"release/1.2": "release-only", "release/a/b": "any-branch", "main": "any-branch", "feature": "any-branch"} {
		if got := values(t, v, req(branch, "DEPLOY_KEY")); !slices.Equal(got, []string{"DEPLOY_KEY=" + want}) {
			t.Errorf("branch %s: %q, want %s", branch, got, want)
		}
	}
	if got := values(t, v, req("main", "MAIN_ONLY")); !slices.Equal(got, []string{"MAIN_ONLY=main-only"}) {
		t.Errorf("main: %q", got)
	}
	_, err := v.Resolve(t.Context(), req("feature", "MAIN_ONLY"))
	if !errors.Is(err, ErrWithheld) {
		t.Fatalf("a main-only secret on a feature branch: %v", err)
	}
	for _, part := range []string{"MAIN_ONLY", "service web", "shop", "staging", "feature", `"main"`, "--branch"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error does not say %q: %v", part, err)
		}
	}
	if strings.Contains(err.Error(), "main-only") {
		t.Errorf("the error shows the value: %v", err)
	}
}

func TestResolveMissingSaysWhatToSet(t *testing.T) {
	v := resolveVault(t)
	_, err := v.Resolve(t.Context(), Request{Names: []string{"G", "NOPE", "OTHER"}, Project: "shop", Environment: "staging",
		Branch: "main", For: `step "test" of shop #1`})
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("missing secrets: %v", err)
	}
	for _, part := range []string{"NOPE", "OTHER", `step "test" of shop #1`, "project shop", "environment staging", "missing",
		"drover secret set NOPE --project shop --env staging", "drover secret set OTHER --project shop --env staging"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error does not say %q: %v", part, err)
		}
	}
	if strings.Contains(err.Error(), "G=") {
		t.Errorf("the error holds a value: %v", err)
	}
	_, err = v.Resolve(t.Context(), Request{Names: []string{"NOPE"}, Project: "shop", Branch: "main", For: "x"})
	if !strings.Contains(err.Error(), "drover secret set NOPE --project shop;") && !strings.HasSuffix(err.Error(), "drover secret set NOPE --project shop") {
		t.Errorf("without an environment, the fix is a project's value: %v", err)
	}
	// Withheld and missing at once: both, each findable.
	v.set(t, Key{Name: "MAIN_ONLY", Project: "shop"}, "main-only", "main")
	_, err = v.Resolve(t.Context(), Request{Names: []string{"MAIN_ONLY", "NOPE"}, Project: "shop", Branch: "dev"})
	if !errors.Is(err, ErrMissing) || !errors.Is(err, ErrWithheld) {
		t.Errorf("one withheld, one missing: %v", err)
	}
}

// A followed repository's other branches get no secrets unless the project allows it.
func TestResolveWithholdsFromOtherBranchesOfExternalRepositories(t *testing.T) {
	v := resolveVault(t)
	req := Request{Names: []string{"G", "P_G"}, Project: "shop", Branch: "feature", DefaultBranch: "main", External: true,
		For: `step "test" of shop #4`}
	_, err := v.Resolve(t.Context(), req)
	if !errors.Is(err, ErrWithheld) {
		t.Fatalf("a feature branch of a followed repository: %v", err)
	}
	for _, part := range []string{"G, P_G", `step "test" of shop #4`, "project shop", "feature", "drover project set shop --branch-secrets"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error does not say %q: %v", part, err)
		}
	}
	req.Environment = "staging"
	if _, err := v.Resolve(t.Context(), req); !strings.Contains(err.Error(), "environment staging") {
		t.Errorf("the error does not name the environment: %v", err)
	}
	req.Environment = ""
	// The default branch gets them; other branches when the project allows it.
	for _, r := range []Request{
		{Names: req.Names, Project: "shop", Branch: "main", DefaultBranch: "main", External: true},
		{Names: req.Names, Project: "shop", Branch: "feature", DefaultBranch: "main", External: true, BranchSecrets: true},
		{Names: req.Names, Project: "shop", Branch: "feature", DefaultBranch: "main"}, // hosted
	} {
		if got := values(t, v, r); len(got) != 2 {
			t.Errorf("%+v: %q", r, got)
		}
	}
	// An unknown default branch is no branch's.
	_, err = v.Resolve(t.Context(), Request{Names: []string{"G"}, Project: "shop", Branch: "main", External: true})
	if !errors.Is(err, ErrWithheld) || !strings.Contains(err.Error(), "--default-branch") {
		t.Errorf("a followed repository whose default branch is not known: %v", err)
	}
}
