package server

import (
	"context"
	"encoding/base64"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/secret"
	"github.com/drover-cd/drover/source"
	"github.com/drover-cd/drover/store"
)

// secretEnv is a full server with secrets, and a token of each kind of caller.
type secretEnv struct {
	*tokenEnv
	admin, dev, releaser, viewer, viewerReleaser string
	machines                                     map[string]string
	bodies                                       []string // every answer, to look for values in
}

func newSecretEnv(t *testing.T) *secretEnv {
	e := &secretEnv{tokenEnv: newTokenEnv(t), machines: map[string]string{}}
	ctx := context.Background()
	mint := func(name, role string, groups ...string) string {
		tok, err := CreateToken(ctx, e.st, name, role, groups...)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var err error
	if e.admin, err = AdminToken(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	e.dev = mint("dev", RoleDeveloper)
	e.releaser = mint("rita", RoleDeveloper, "release-manager")
	e.viewer = mint("vic", RoleViewer)
	e.viewerReleaser = mint("vera", RoleViewer, "release-manager")
	for _, kind := range machines {
		e.machines[kind] = machineToken(t, e.st.Store, kind)
	}
	return e
}

// try sends a request and notes its answer.
func (e *secretEnv) try(token, method, path string, in, out any) (int, string) {
	e.t.Helper()
	code, body := e.call(token, method, path, in, out)
	e.bodies = append(e.bodies, body)
	return code, body
}

// put sets NAME in a scope with value.
func (e *secretEnv) put(token, name, project, env, value string) (int, string) {
	e.t.Helper()
	return e.try(token, "PUT", "/api/v1/secrets/"+name, map[string]string{"value": value, "project": project, "env": env}, nil)
}

func TestWhoMaySetAndRemoveSecrets(t *testing.T) {
	e := newSecretEnv(t)
	for _, c := range []struct {
		who, token     string
		project, env   string
		code           int
		says           string
		value          string
		removeAfterSet bool
	}{
		// Developers: a project's secrets, for no environment or one without approval rules.
		{"developer", e.dev, "app", "", 200, "", "dev-app-value-1", true},
		{"developer", e.dev, "app", "staging", 200, "", "dev-app-staging-2", true},
		{"developer", e.dev, "app", "production", 403, "release-manager approval role", "dev-app-prod-3", false},
		{"developer", e.dev, "", "", 403, "global secrets", "dev-global-4", false},
		{"developer", e.dev, "", "staging", 403, "global secrets", "dev-global-staging-5", false},
		{"developer", e.dev, "", "production", 403, "release-manager", "dev-global-prod-6", false},
		// A holder of production's approval role: production's, also global ones there.
		{"release manager", e.releaser, "app", "production", 200, "", "rm-app-prod-7", true},
		{"release manager", e.releaser, "", "production", 200, "", "rm-global-prod-8", true},
		{"release manager", e.releaser, "", "", 403, "global secrets", "rm-global-9", false},
		{"release manager", e.releaser, "", "staging", 403, "global secrets", "rm-global-staging-10", false},
		// Admins: everything.
		{"admin", e.admin, "", "", 200, "", "admin-global-11", true},
		{"admin", e.admin, "shop", "production", 200, "", "admin-shop-prod-12", true},
		// Viewers: nothing, approval role or not.
		{"viewer", e.viewer, "app", "", 403, "developer role", "viewer-13", false},
		{"viewer with an approval role", e.viewerReleaser, "app", "production", 403, "developer role", "viewer-rm-14", false},
		// Anonymous callers and machines: nothing.
		{"anonymous", "", "app", "", 401, "sign in", "anon-15", false},
		{"agent token", e.machines[MachineAgent], "app", "", 403, "agent token", "agent-16", false},
		{"proxy token", e.machines[MachineProxy], "app", "", 403, "proxy token", "proxy-17", false},
		{"pull token", e.machines[MachinePull], "app", "", 403, "pull token", "pull-18", false},
	} {
		code, body := e.put(c.token, "DB_PASSWORD", c.project, c.env, c.value)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s sets DB_PASSWORD for project %q, env %q: %d %s; want %d saying %q", c.who, c.project, c.env, code, body, c.code, c.says)
			continue
		}
		q := "?project=" + c.project + "&env=" + c.env
		if c.code == 200 {
			var m secretJSON
			if code, body := e.try(c.token, "PUT", "/api/v1/secrets/DB_PASSWORD", map[string]string{"value": c.value + "-v2", "project": c.project, "env": c.env}, &m); code != 200 || m.Version != 2 {
				t.Errorf("%s sets DB_PASSWORD again: %d %s", c.who, code, body)
			}
			// Whoever may set it may remove it; no one else may.
			for _, other := range []string{e.viewer, e.machines[MachineAgent]} {
				if code, body := e.try(other, "DELETE", "/api/v1/secrets/DB_PASSWORD"+q, nil, nil); code != 403 {
					t.Errorf("DELETE %s by a viewer or a machine: %d %s", q, code, body)
				}
			}
			if c.removeAfterSet {
				if code, body := e.try(c.token, "DELETE", "/api/v1/secrets/DB_PASSWORD"+q, nil, nil); code != 200 {
					t.Errorf("%s removes DB_PASSWORD%s: %d %s", c.who, q, code, body)
				}
			}
		} else if code, body := e.try(c.token, "DELETE", "/api/v1/secrets/DB_PASSWORD"+q, nil, nil); code != c.code {
			t.Errorf("%s removes DB_PASSWORD%s: %d %s; want %d", c.who, q, code, body, c.code)
		}
	}
	// A developer may not remove what they may not set, even when it is there.
	e.put(e.admin, "API_KEY", "app", "production", "prod-api-key-19")
	if code, body := e.try(e.dev, "DELETE", "/api/v1/secrets/API_KEY?project=app&env=production", nil, nil); code != 403 {
		t.Errorf("a developer removes production's API_KEY: %d %s", code, body)
	}

	// Rekeys: admins only.
	for who, token := range map[string]string{"developer": e.dev, "release manager": e.releaser, "viewer": e.viewer, "agent": e.machines[MachineAgent]} {
		if code, body := e.try(token, "POST", "/api/v1/secrets/rekey", nil, nil); code != 403 {
			t.Errorf("a %s rekeys: %d %s", who, code, body)
		}
	}
	var rekeyed struct {
		Rekeyed int    `json:"rekeyed"`
		KeyID   string `json:"key_id"`
	}
	if code, body := e.try(e.admin, "POST", "/api/v1/secrets/rekey", nil, &rekeyed); code != 200 || rekeyed.Rekeyed != 1 || len(rekeyed.KeyID) != 8 {
		t.Errorf("an admin rekeys: %d %s", code, body)
	}

	// Listing: viewers too; machines and anonymous callers not.
	var list []secretJSON
	if code, body := e.try(e.viewer, "GET", "/api/v1/secrets?all=1", nil, &list); code != 200 || len(list) != 1 ||
		list[0].Name != "API_KEY" || list[0].Project != "app" || list[0].Env != "production" || list[0].Actor != "admin" || list[0].Version != 1 {
		t.Errorf("a viewer lists secrets: %d %s", code, body)
	}
	for _, token := range []string{"", e.machines[MachineAgent], e.machines[MachineProxy], e.machines[MachinePull]} {
		if code, body := e.try(token, "GET", "/api/v1/secrets?all=1", nil, nil); code != 401 && code != 403 {
			t.Errorf("GET /api/v1/secrets by %q: %d %s", token, code, body)
		}
	}

	// No answer ever held a value.
	for _, body := range e.bodies {
		for _, part := range []string{"-value-", "-prod-", "-global", "-staging-", "viewer-", "anon-", "agent-", "proxy-", "pull-"} {
			if strings.Contains(body, part) {
				t.Errorf("an answer holds a value (%q): %s", part, body)
			}
		}
	}
}

func TestSecretsRefuseBadInput(t *testing.T) {
	e := newSecretEnv(t)
	for _, c := range []struct {
		what, name string
		in         map[string]any
		code       int
		says       string
	}{
		{"a lower-case name", "db_password", map[string]any{"value": "long enough", "project": "app"}, 400, "environment variable's name"},
		{"a name with a dash", "DB-PASSWORD", map[string]any{"value": "long enough", "project": "app"}, 400, "environment variable's name"},
		{"a 3-byte value", "DB_PASSWORD", map[string]any{"value": "abc", "project": "app"}, 400, "could not be masked"},
		{"an empty value", "DB_PASSWORD", map[string]any{"value": "", "project": "app"}, 400, "could not be masked"},
		{"no value", "DB_PASSWORD", map[string]any{"project": "app"}, 400, `"value"`},
		{"two values", "DB_PASSWORD", map[string]any{"value": "abcd", "value_base64": "YWJjZA==", "project": "app"}, 400, `"value"`},
		{"a NUL", "DB_PASSWORD", map[string]any{"value_base64": base64.StdEncoding.EncodeToString([]byte("ab\x00cd")), "project": "app"}, 400, "NUL"},
		{"bad base64", "DB_PASSWORD", map[string]any{"value_base64": "!!", "project": "app"}, 400, "value_base64"},
		{"a value over 64 KiB", "DB_PASSWORD", map[string]any{"value": strings.Repeat("x", 64<<10+1), "project": "app"}, 400, "64 KiB"},
		{"a bad environment", "DB_PASSWORD", map[string]any{"value": "long enough", "project": "app", "env": "Staging"}, 400, "environment's name"},
		{"a bad branch glob", "DB_PASSWORD", map[string]any{"value": "long enough", "project": "app", "branch": "[x"}, 400, "branch glob"},
		{"a project's name in another case", "DB_PASSWORD", map[string]any{"value": "long enough", "project": "App"}, 400, `use --project app`},
		{"a name no project can have", "DB_PASSWORD", map[string]any{"value": "long enough", "project": "bad name"}, 400, "project name"},
		{"an unknown field", "DB_PASSWORD", map[string]any{"value": "long enough", "scope": "x"}, 400, "unknown field"},
	} {
		if code, body := e.try(e.admin, "PUT", "/api/v1/secrets/"+c.name, c.in, nil); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("PUT with %s: %d %s; want %d saying %q", c.what, code, body, c.code, c.says)
		}
	}
	if code, body := e.try(e.admin, "DELETE", "/api/v1/secrets/db-password?project=app", nil, nil); code != 400 {
		t.Errorf("DELETE of a malformed name: %d %s", code, body)
	}

	// Unknown projects: nothing to list or remove there.
	if code, body := e.try(e.admin, "GET", "/api/v1/secrets?project=nope", nil, nil); code != 404 || !strings.Contains(body, "no project nope") {
		t.Errorf("GET ?project=nope: %d %s", code, body)
	}
	if code, body := e.try(e.admin, "DELETE", "/api/v1/secrets/DB_PASSWORD?project=nope", nil, nil); code != 404 || !strings.Contains(body, "drover secret ls") {
		t.Errorf("DELETE for project nope: %d %s", code, body)
	}
	if code, body := e.try(e.admin, "DELETE", "/api/v1/secrets/DB_PASSWORD?project=app", nil, nil); code != 404 {
		t.Errorf("DELETE of a secret that is not there: %d %s", code, body)
	}
	if code, body := e.try(e.admin, "PATCH", "/api/v1/projects/nope", map[string]any{"default_branch": "main"}, nil); code != 404 {
		t.Errorf("PATCH /api/v1/projects/nope: %d %s", code, body)
	}
	// A project that does not exist yet may have secrets for its first run: with a
	// warning, which names it, and then it is listed.
	var m secretJSON
	if code, body := e.try(e.dev, "PUT", "/api/v1/secrets/DB_PASSWORD", map[string]any{"value": "for-a-new-project", "project": "newapp"}, &m); code != 200 ||
		!strings.Contains(m.Warning, "project newapp does not exist yet") {
		t.Errorf("PUT for a project not made yet: %d %s", code, body)
	}
	var list []secretJSON
	if code, body := e.try(e.viewer, "GET", "/api/v1/secrets?project=newapp", nil, &list); code != 200 || len(list) != 1 {
		t.Errorf("GET ?project=newapp: %d %s", code, body)
	}
	if code, body := e.try(e.viewer, "GET", "/api/v1/secrets?project=shop", nil, &list); code != 200 || len(list) != 0 {
		t.Errorf("GET ?project=shop (a project with no secrets): %d %s", code, body)
	}
	for _, body := range e.bodies {
		if strings.Contains(body, "long enough") || strings.Contains(body, "for-a-new-project") {
			t.Errorf("an answer holds a value: %s", body)
		}
	}
}

// What the vault does shows in the audit log, never with a value.
func TestSecretChangesAreAudited(t *testing.T) {
	e := newSecretEnv(t)
	e.put(e.dev, "DB_PASSWORD", "app", "staging", "audited-value-1")
	e.put(e.dev, "DB_PASSWORD", "app", "staging", "audited-value-2")
	e.try(e.dev, "DELETE", "/api/v1/secrets/DB_PASSWORD?project=app&env=staging", nil, nil)
	e.try(e.admin, "POST", "/api/v1/secrets/rekey", nil, nil)
	var entries []struct {
		Actor, Action, Environment, Project, Message string
	}
	if code, body := e.call(e.viewer, "GET", "/api/v1/audit", nil, &entries); code != 200 {
		t.Fatalf("GET /api/v1/audit: %d %s", code, body)
	}
	var got []string
	for _, a := range entries {
		if strings.HasPrefix(a.Action, "secret-") {
			got = append(got, a.Actor+" "+a.Action+" "+a.Project+" "+a.Environment+": "+a.Message)
		}
		if strings.Contains(a.Message, "audited-value") {
			t.Errorf("the audit log holds a value: %+v", a)
		}
	}
	want := []string{
		"admin secret-rekey  : re-encrypted 0 values under key",
		"dev secret-rm app staging: DB_PASSWORD (project app, environment staging): removed at version 2",
		"dev secret-set app staging: DB_PASSWORD (project app, environment staging): version 2",
		"dev secret-set app staging: DB_PASSWORD (project app, environment staging): version 1",
	}
	if len(got) != len(want) {
		t.Fatalf("audit:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("audit entry %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestSecretsNotConfigured(t *testing.T) {
	e := newTokenEnv(t)
	srv := New(Config{Store: e.st, Log: nil, Started: time.Now()})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	admin, err := AdminToken(context.Background(), e.st)
	if err != nil {
		t.Fatal(err)
	}
	e.ts = ts
	for _, req := range [][2]string{{"GET", "/api/v1/secrets"}, {"PUT", "/api/v1/secrets/X_KEY"}, {"DELETE", "/api/v1/secrets/X_KEY"}, {"POST", "/api/v1/secrets/rekey"}} {
		var in any
		if req[0] == "PUT" {
			in = map[string]string{"value": "abcdef"}
		}
		if code, body := e.call(admin, req[0], req[1], in, nil); code != 503 || !strings.Contains(body, "secrets are not configured") {
			t.Errorf("%s %s without secrets: %d %s", req[0], req[1], code, body)
		}
	}
}

func TestProjectDefaultBranchAndBranchSecrets(t *testing.T) {
	e := newSecretEnv(t)
	var p projectJSON
	if code, body := e.call(e.admin, "PATCH", "/api/v1/projects/app", map[string]any{"default_branch": "trunk", "branch_secrets": true}, &p); code != 200 ||
		p.DefaultBranch != "trunk" || !p.BranchSecrets {
		t.Fatalf("PATCH default_branch, branch_secrets: %d %s", code, body)
	}
	if code, body := e.call(e.admin, "PATCH", "/api/v1/projects/app", map[string]any{"keep_runs": 3}, &p); code != 200 || p.DefaultBranch != "trunk" || !p.BranchSecrets {
		t.Errorf("PATCH keep_runs changed the branches: %d %s", code, body)
	}
	for _, bad := range []string{"a b", "-x", "a..b", "refs/heads/main", "x.lock", "a:b"} {
		if code, body := e.call(e.admin, "PATCH", "/api/v1/projects/app", map[string]any{"default_branch": bad}, nil); code != 400 || !strings.Contains(body, "not a branch name") {
			t.Errorf("default_branch %q: %d %s", bad, code, body)
		}
	}
	if code, _ := e.call(e.dev, "PATCH", "/api/v1/projects/app", map[string]any{"branch_secrets": false}, nil); code != 403 {
		t.Errorf("a developer changes branch_secrets: %d", code)
	}
	var ps []projectJSON
	e.call(e.viewer, "GET", "/api/v1/projects", nil, &ps)
	for _, p := range ps {
		if p.Name == "app" && (p.DefaultBranch != "trunk" || !p.BranchSecrets) {
			t.Errorf("GET /api/v1/projects: %+v", p)
		}
	}
	var entries []store.AuditEntry
	got, _ := e.st.Audit(context.Background(), 0, 10)
	for _, a := range got {
		if a.Action == "project-set" {
			entries = append(entries, *a)
		}
	}
	if len(entries) != 1 || entries[0].Project != "app" || entries[0].Message != `default branch "trunk" (was ""), branch secrets true` {
		t.Errorf("audit of the change: %+v", entries)
	}
}

// The first push to a hosted project makes its default branch; later ones do not
// change it. A followed project takes its remote's, or a likely one.
func TestDefaultBranchIsLearned(t *testing.T) {
	srv, st := fullServer(t, false)
	ctx := context.Background()
	branch := func(name string) string {
		p, err := st.Project(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return p.DefaultBranch
	}
	sha := strings.Repeat("a", 40)
	srv.OnPush(ctx, "app", []source.RefUpdate{{Ref: "refs/tags/v1", New: sha}, {Ref: "refs/heads/feature", New: sha}})
	if got := branch("app"); got != "feature" {
		t.Errorf("after a first push of feature: %q", got)
	}
	srv.OnPush(ctx, "app", []source.RefUpdate{{Ref: "refs/heads/main", New: sha}})
	if got := branch("app"); got != "feature" {
		t.Errorf("a later push changed the default branch: %q", got)
	}
	srv.OnPush(ctx, "shop", []source.RefUpdate{{Ref: "refs/heads/zeta", New: sha}, {Ref: "refs/heads/main", New: sha}, {Ref: "refs/heads/alpha", New: sha}})
	if got := branch("shop"); got != "main" {
		t.Errorf("after a first push of several branches: %q, want main", got)
	}

	// A project older than default branches: its repository's branches decide, not
	// the branch pushed, and the server's start fills in those not pushed to since.
	for _, name := range []string{"legacy", "legacy2"} {
		if err := st.CreateProject(ctx, &store.Project{Name: name}); err != nil {
			t.Fatal(err)
		}
		bare := srv.cfg.Hosting.RepoPath(name)
		if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
			t.Fatalf("git init: %v\n%s", err, out)
		}
		webGitPush(t, bare, map[string]string{"drover.yml": "steps: []\n"})
	}
	srv.OnPush(ctx, "legacy", []source.RefUpdate{{Ref: "refs/heads/feature", Old: sha, New: sha}})
	if got := branch("legacy"); got != "main" {
		t.Errorf("a project older than default branches, after a push of feature: %q, want main", got)
	}
	if err := srv.NoteDefaultBranches(ctx); err != nil {
		t.Fatal(err)
	}
	if got := branch("legacy2"); got != "main" {
		t.Errorf("after the start, a project older than default branches: %q, want main", got)
	}

	// A followed repository that does not answer for its HEAD: a likely branch.
	for heads, want := range map[string]string{"dev main": "main", "dev master": "master", "zeta beta": "beta"} {
		p := &store.Project{Name: "f-" + strings.ReplaceAll(heads, " ", "-"), URL: t.TempDir() + "/missing.git"}
		if err := st.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, h := range strings.Fields(heads) {
			m[h] = sha
		}
		srv.followedDefault(ctx, p, m)
		if got := branch(p.Name); got != want {
			t.Errorf("followed with %s: %q, want %s", heads, got, want)
		}
	}
}

// Without deploys, production still needs its approval role, as deploy/gates.go says,
// and an environment declared with one needs that one.
func TestSecretsWithoutDeploysKnowApprovalRoles(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	keys, err := secret.OpenKeyring(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(Config{Store: e.st, Secrets: secret.NewVault(e.st, keys), Started: time.Now()}))
	t.Cleanup(ts.Close)
	e.ts = ts
	if err := e.st.CreateEnvironment(ctx, &store.Environment{Name: "audited", Strategy: "rolling", Approval: "auditor", Managed: true}); err != nil {
		t.Fatal(err)
	}
	dev, err := CreateToken(ctx, e.st, "dev", RoleDeveloper)
	if err != nil {
		t.Fatal(err)
	}
	for env, want := range map[string]int{"staging": 200, "production": 403, "audited": 403} {
		code, body := e.call(dev, "PUT", "/api/v1/secrets/API_KEY", map[string]string{"value": "abcdefgh", "project": "app", "env": env}, nil)
		if code != want {
			t.Errorf("a developer sets app's API_KEY for %s without deploys: %d %s; want %d", env, code, body, want)
		}
	}
}
