package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 14's people and tokens: what is tried here fails on a server where people are
// token names and tokens live for ever.

// cli runs drover against s with token.
func (s *testServer) cli(token string, args ...string) result {
	s.t.Helper()
	return drover(s.t, "", append(args, "--server", s.URL, "--token", token)...)
}

// mintCLI runs drover token create with args as the admin and returns the token.
func (s *testServer) mintCLI(args ...string) string {
	s.t.Helper()
	res := s.cli(s.Token, append([]string{"token", "create"}, args...)...)
	if res.code != 0 || strings.Count(strings.TrimSpace(res.stdout), "\n") != 0 {
		s.t.Fatalf("token create %v: %s", args, res)
	}
	return strings.TrimSpace(res.stdout)
}

// tokenID finds the ID of the token labelled label in drover token ls.
func (s *testServer) tokenID(label string) string {
	s.t.Helper()
	res := s.cli(s.Token, "token", "ls")
	for _, line := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == label {
			return f[0]
		}
	}
	s.t.Fatalf("no token labelled %s in token ls:\n%s", label, res)
	return ""
}

// asUser is the server's URL with token as the password of basic auth.
func (s *testServer) asUser(name, token string) string {
	return strings.Replace(s.URL, "http://", "http://"+name+":"+token+"@", 1)
}

const approvalPipeline = `
steps:
  - name: build
    run: echo built
  - name: go-live
    approval: {role: release-manager}
  - name: production
    deploy: production
`

// Separation of duties goes by person: a second person's token named developer
// approves what the first pushed, and a person's second token does not make them
// someone else.
func TestSeparationOfDutiesGoesByUser(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	envFile := filepath.Join(t.TempDir(), "environments.yml")
	os.WriteFile(envFile, []byte("environments:\n  production: { separation: true }\n"), 0o644)
	if res := s.cli(s.Token, "env", "apply", envFile); res.code != 0 {
		t.Fatalf("env apply: %s", res)
	}
	// Two people, each given a token the old way: both tokens are named developer.
	first := s.mintCLI("--role", "developer", "--approves", "release-manager")
	second := s.mintCLI("--role", "developer", "--approves", "release-manager")
	users := s.cli(s.Token, "user", "ls")
	for _, want := range []string{"developer    developer", "developer-2  developer", "admin        admin"} {
		if !strings.Contains(users.stdout, want) {
			t.Errorf("user ls lacks %q:\n%s", want, users)
		}
	}

	repo := gitRepo(t, approvalPipeline)
	git(t, repo, "push", "-q", s.asUser("x", first)+"/git/app.git", "main")
	if run := s.waitRun("app", 1, func(r apiRun) bool { return r.Status == "waiting" }); run.Trigger != "developer" {
		t.Errorf("run 1's trigger: %q, want the user developer", run.Trigger)
	}
	if res := s.cli(first, "approve", "app", "1"); res.code == 0 || !strings.Contains(res.stderr, "developer pushed this change") {
		t.Errorf("the pusher approves her own change: %s", res)
	}
	if res := s.cli(second, "approve", "app", "1", "-m", "looked at it"); res.code != 0 {
		t.Fatalf("another person whose token is named developer approves: %s", res)
	}
	if run := s.waitRun("app", 1, finished); !strings.Contains(run.Steps[1].Reason, "approved by developer-2") {
		t.Errorf("run 1 after the approval: %+v", run)
	}

	// One person, two tokens: still one person.
	if res := s.cli(s.Token, "user", "add", "alice", "--role", "developer", "--approves", "release-manager"); res.code != 0 ||
		!strings.Contains(res.stdout, "added user alice (developer, approves release-manager)") {
		t.Fatalf("user add alice: %s", res)
	}
	laptop := s.mintCLI("--user", "alice", "--label", "laptop")
	ci := s.mintCLI("--user", "alice", "--label", "ci")
	os.WriteFile(filepath.Join(repo, "second"), []byte("2"), 0o644)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "second")
	git(t, repo, "push", "-q", s.asUser("alice", laptop)+"/git/app.git", "main")
	s.waitRun("app", 2, func(r apiRun) bool { return r.Status == "waiting" })
	if res := s.cli(ci, "approve", "app", "2"); res.code == 0 || !strings.Contains(res.stderr, "alice pushed this change") {
		t.Errorf("alice approves her own change with her other token: %s", res)
	}
	if res := s.cli(first, "approve", "app", "2"); res.code != 0 {
		t.Errorf("developer approves alice's change: %s", res)
	}
	var approvals []string
	for _, e := range auditOf(s) {
		if e.Action == "approve" {
			approvals = append(approvals, e.Actor)
		}
	}
	if !slices.Equal(approvals, []string{"developer", "developer-2"}) {
		t.Errorf("the audit log's approvals are by %v; want developer (run 2), developer-2 (run 1)", approvals)
	}
}

// webSignIn signs in at /login with token and returns the session cookie.
func (s *testServer) webSignIn(token string) *http.Cookie {
	s.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(s.URL+"/login", url.Values{"token": {token}, "next": {"/p/app"}})
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "drover_token" && ck.Value != "" {
			return ck
		}
	}
	s.t.Fatalf("sign in: %d, no cookie", resp.StatusCode)
	return nil
}

// doors tries token at each door and returns the status each answered.
func (s *testServer) doors(token string, session *http.Cookie, clone string) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	get := func(path string, set func(*http.Request)) (int, string) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Accept", ociManifest)
		set(req)
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			s.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/api/v1/projects", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
	out["api"] = fmt.Sprint(code, " ", body)
	code, body = get("/v2/app/manifests/r1", func(r *http.Request) { r.SetBasicAuth("rita", token) })
	out["registry basic"] = fmt.Sprint(code, " ", body)
	code, body = get("/auth/token?service=drover&scope=repository:app:pull", func(r *http.Request) { r.SetBasicAuth("rita", token) })
	out["registry token flow"] = fmt.Sprint(code, " ", body)
	code, body = get("/v2/app/manifests/r1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
	out["registry bearer"] = fmt.Sprint(code, " ", body)
	code, _ = get("/p/app", func(r *http.Request) { r.AddCookie(session) })
	out["web session"] = fmt.Sprint(code)
	dir := filepath.Join(s.t.TempDir(), "clone")
	if o, err := gitErr(s.t.TempDir(), "clone", "-q", clone, dir); err != nil {
		out["git clone"] = "failed: " + o
	} else {
		out["git clone"] = "ok"
	}
	return out
}

// Revoking a token takes effect at once on every door; token ls never shows a secret;
// creating and revoking are audited; an expired token is refused.
func TestRevokedAndExpiredTokensAreRefusedEverywhere(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	git(t, gitRepo(t, releasePipeline), "push", "-q", s.pushURL("app"), "main")
	if run := s.waitRun("app", 1, finished); run.Status != "success" {
		t.Fatalf("run 1: %+v\n%s", run, s.log)
	}
	if res := s.cli(s.Token, "user", "add", "rita", "--role", "viewer"); res.code != 0 {
		t.Fatalf("user add: %s", res)
	}
	res := s.cli(s.Token, "token", "create", "--user", "rita", "--label", "laptop", "--expires", "90d")
	if res.code != 0 || !strings.Contains(res.stderr, `for user rita (viewer), label "laptop", expires `) {
		t.Fatalf("token create --user rita: %s", res)
	}
	token := strings.TrimSpace(res.stdout)
	other := s.mintCLI("--user", "rita", "--label", "phone")
	session := s.webSignIn(token)
	clone := s.asUser("rita", token) + "/git/app.git"

	before := s.doors(token, session, clone)
	for door, got := range before {
		if got != "200" && !strings.HasPrefix(got, "200 ") && got != "ok" {
			t.Errorf("%s before revoking: %s", door, got)
		}
	}
	if !strings.Contains(before["registry token flow"], token) {
		t.Errorf("the token flow does not hand the token back: %s", before["registry token flow"])
	}

	// token ls: IDs, users, labels, roles, times; never a secret.
	ls := s.cli(s.Token, "token", "ls")
	if !regexp.MustCompile(`(?m)^ID\s+USER\s+LABEL\s+ROLE\s+CREATED\s+LAST USED\s+EXPIRES$`).MatchString(ls.stdout) ||
		!regexp.MustCompile(`(?m)^\d+\s+rita\s+laptop\s+viewer\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\d{4}-\d\d-\d\d \d\d:\d\d$`).MatchString(ls.stdout) ||
		!regexp.MustCompile(`(?m)^\d+\s+admin\s+admin-token file\s+admin\s+`).MatchString(ls.stdout) {
		t.Errorf("token ls:\n%s", ls)
	}
	mine := s.cli(other, "token", "ls")
	if !strings.Contains(mine.stdout, "laptop") || strings.Contains(mine.stdout, "admin") {
		t.Errorf("rita's token ls shows other people's tokens or not hers:\n%s", mine)
	}
	id := s.tokenID("laptop")

	// Rita revokes her laptop's token with her phone's.
	if res := s.cli(other, "token", "revoke", id); res.code != 0 || !strings.Contains(res.stdout, "revoked token "+id+" of rita") {
		t.Fatalf("token revoke %s: %s", id, res)
	}
	after := s.doors(token, session, clone)
	for door, got := range after {
		switch {
		case door == "web session":
			if got != "303" {
				t.Errorf("the web session after revoking: %s, want 303 to /login", got)
			}
		case door == "git clone":
			if !strings.HasPrefix(got, "failed") {
				t.Errorf("git clone after revoking: %s", got)
			}
		case !strings.HasPrefix(got, "401 ") || !strings.Contains(got, "the token was revoked at ") || !strings.Contains(got, "create a new one with drover token create"):
			t.Errorf("%s after revoking: %s; want 401 saying it was revoked", door, got)
		}
	}
	all := s.cli(s.Token, "token", "ls", "--all")
	if !regexp.MustCompile(`(?m)^`+id+`\s+rita\s+laptop\s+viewer\s+.*\srevoked$`).MatchString(all.stdout) || strings.Contains(s.cli(s.Token, "token", "ls").stdout, "laptop") {
		t.Errorf("token ls --all does not show the revoked token, or token ls does:\n%s", all)
	}
	for _, secret := range []string{token, other, s.Token} {
		if strings.Contains(all.stdout+ls.stdout+mine.stdout, secret) {
			t.Errorf("token ls printed a secret:\n%s", all.stdout)
		}
	}
	if res := s.cli(other, "token", "revoke", s.tokenID("admin-token")); res.code == 0 || !strings.Contains(res.stderr, "of yours") {
		t.Errorf("rita revokes the admin's token: %s", res)
	}
	audit := s.cli(s.Token, "audit")
	for _, want := range []string{"admin        user-add", "admin        token-create", `token ` + id + ` of rita (viewer), label "laptop"`, "rita         token-revoke"} {
		if !strings.Contains(audit.stdout, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, audit)
		}
	}

	// An expired token is refused with the time it expired.
	brief := s.mintCLI("--user", "rita", "--expires", "1s")
	time.Sleep(1100 * time.Millisecond)
	if code := s.api("GET", "/api/v1/projects", brief, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("an expired token: %d", code)
	}
	if code, body := s.doAs(brief, "GET", "/api/v1/projects", nil, ""); !strings.Contains(body, "the token expired at ") ||
		!strings.Contains(body, "create a new one with drover token create") {
		t.Errorf("an expired token: %d %s", code, body)
	}
	for _, args := range [][]string{{"--user", "rita", "--expires", "1x"}, {"--user", "rita", "--role", "admin"}, {"--machine", "pull"}} {
		if res := s.cli(s.Token, append([]string{"token", "create"}, args...)...); res.code != 2 {
			t.Errorf("token create %v: %s; want exit 2", args, res)
		}
	}
}

// Machine tokens can do their job and nothing else; the first admin token belongs to
// the user admin, and a server whose admin tokens all stopped working makes a new one.
func TestMachineTokensAndTheAdminToken(t *testing.T) {
	t.Parallel()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startServer(t, dir, "", "--keep-for", "90d", "--gc-every", "1d")
	repo := gitRepo(t, servicePipeline(bin, "web", "v1", "", ""))
	git(t, repo, "push", "-q", s.pushURL("web"), "main")
	if run := s.waitRun("web", 1, finished); run.Status != "success" {
		t.Fatalf("run 1: %+v\n%s", run, s.log)
	}
	s.waitBody("web", "staging", "v1 staging")

	proxy := s.mintCLI("--machine", "proxy", "--label", "edge-1")
	agent := s.mintCLI("--machine", "agent")
	res := s.cli(s.Token, "token", "create", "--machine", "pull", "--repository", "web")
	if res.code != 0 || !strings.Contains(res.stderr, "for machine pull of web") || !strings.Contains(res.stderr, "expires") {
		t.Fatalf("token create --machine pull: %s", res)
	}
	pull := strings.TrimSpace(res.stdout)
	if res := s.cli(s.Token, "token", "create", "--machine", "pull", "--repository", "web", "--expires", "2d"); res.code == 0 || !strings.Contains(res.stderr, "at most 24h") {
		t.Errorf("a pull token for 2d: %s", res)
	}

	// The proxy token reads the route table: web.staging goes to its two instances.
	var routes struct {
		Routes []struct {
			Host, Service, Environment string
			Instances                  []struct{ ID, Addr string }
		}
	}
	if code := s.api("GET", "/api/v1/routes", proxy, nil, &routes); code != 200 || len(routes.Routes) != 1 {
		t.Fatalf("GET /api/v1/routes as the proxy: %d %+v", code, routes)
	}
	rt := routes.Routes[0]
	if rt.Host != "web.staging.localhost" || rt.Service != "web" || rt.Environment != "staging" || len(rt.Instances) != 2 {
		t.Errorf("the route table: %+v", routes)
	}
	for _, inst := range rt.Instances {
		resp, err := http.Get("http://" + inst.Addr + "/")
		if err != nil {
			t.Errorf("instance %s at %s: %v", inst.ID, inst.Addr, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(b)) != "v1 staging" {
			t.Errorf("instance %s at %s answers %q", inst.ID, inst.Addr, b)
		}
	}

	// The pull token pulls web's release and nothing else.
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v2/", 200},
		{"GET", "/v2/web/manifests/r1", 200},
		{"HEAD", "/v2/web/manifests/r1", 200},
		{"GET", "/v2/web/tags/list", 200},
		{"GET", "/v2/other/tags/list", 403},
		{"PUT", "/v2/web/manifests/r9", 403},
		{"POST", "/v2/base/x/blobs/uploads/", 403},
		{"GET", "/api/v1/projects", 403},
		{"GET", "/api/v1/routes", 403},
		{"GET", "/p/web", 403},
	} {
		req, _ := http.NewRequest(c.method, s.URL+c.path, nil)
		req.SetBasicAuth("swarm", pull)
		req.Header.Set("Accept", ociManifest)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("pull token: %s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
	for who, token := range map[string]string{"proxy": proxy, "agent": agent, "pull": pull} {
		if _, err := gitErr(t.TempDir(), "clone", "-q", s.asUser("m", token)+"/git/web.git", "c"); err == nil {
			t.Errorf("a %s token clones", who)
		}
		if code, body := s.doAs(token, "GET", "/api/v1/environments", nil, ""); code != 403 || !strings.Contains(body, "a "+who+" token") {
			t.Errorf("a %s token lists environments: %d %s", who, code, body)
		}
	}
	if code, body := s.doAs(agent, "GET", "/v2/", nil, ""); code != 403 {
		t.Errorf("an agent token at /v2/: %d %s", code, body)
	}
	if res := s.cli(s.Token, "project", "set", "web", "--keep-for", "90d"); res.code != 0 || !strings.Contains(res.stdout, "younger than 90d") {
		t.Errorf("project set --keep-for 90d: %s", res)
	}
	if res := s.cli(s.Token, "project", "set", "web", "--keep-for", "1x"); res.code != 2 || !strings.Contains(res.stderr, `unknown unit "x"`) {
		t.Errorf("project set --keep-for 1x: %s", res)
	}

	// The first admin token is the user admin's. Once no admin token works, a restart
	// makes a new one.
	if res := s.cli(s.Token, "user", "ls"); !regexp.MustCompile(`(?m)^admin\s+admin\s+-\s+`).MatchString(res.stdout) {
		t.Errorf("user ls:\n%s", res)
	}
	old := s.Token
	if res := s.cli(old, "token", "revoke", s.tokenID("admin-token")); res.code != 0 {
		t.Fatalf("revoke the admin token: %s", res)
	}
	s.stop(syscall.SIGTERM)
	s.start()
	if s.Token == old || !strings.Contains(s.log.String(), "created the admin token") {
		t.Fatalf("a restart with no admin token that works made none:\n%s", s.log)
	}
	if res := s.cli(s.Token, "token", "ls", "--all", "--user", "admin"); strings.Count(res.stdout, "admin-token file") != 2 || !strings.Contains(res.stdout, "revoked") {
		t.Errorf("the admin's tokens after the restart:\n%s", res)
	}
}

func TestUserAndTokenCommandsHaveHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"user", "user add", "user ls", "token", "token create", "token ls", "token revoke"} {
		r := drover(t, t.TempDir(), append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("drover %s --help:\n%s", cmd, r)
		}
	}
	if r := drover(t, t.TempDir(), "token", "create", "--help"); !strings.Contains(r.stdout, "--expires duration") {
		t.Errorf("token create --help does not show --expires as a duration:\n%s", r.stdout)
	}
	if r := drover(t, t.TempDir(), "user", "add", "bob", "--server", "http://127.0.0.1:1", "--token", "x"); r.code != 2 || !strings.Contains(r.stderr, "--role is required") {
		t.Errorf("user add without --role: %s", r)
	}
}
