package main

import (
	"strings"
	"testing"
)

// A mistyped subcommand of a command group fails with a did-you-mean and exit 2, as a
// mistyped top-level command does; the group alone prints its help.
func TestUnknownSubcommandOfAGroup(t *testing.T) {
	t.Parallel()
	for _, group := range []string{"env", "user", "token", "project", "artifact", "registry", "secret", "completion"} {
		r := drover(t, t.TempDir(), group, "shwo", "production")
		if r.code != 2 || r.stdout != "" ||
			!strings.HasPrefix(r.stderr, `drover: unknown command "shwo" for "drover `+group+`"`) ||
			!strings.HasSuffix(r.stderr, "Run 'drover "+group+" --help' for usage.\n") {
			t.Errorf("drover %s shwo: want exit 2, the unknown command and the group's help:\n%s", group, r)
		}
		if r := drover(t, t.TempDir(), group); r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") {
			t.Errorf("drover %s: want its help and exit 0:\n%s", group, r)
		}
	}
	r := drover(t, t.TempDir(), "env", "shwo", "production")
	want := "drover: unknown command \"shwo\" for \"drover env\"\n\nDid you mean this?\n\tshow\n\nRun 'drover env --help' for usage.\n"
	if r.stderr != want {
		t.Errorf("drover env shwo: want\n%s\ngot\n%s", want, r)
	}
	if r := drover(t, t.TempDir(), "user", "lss"); r.code != 2 || !strings.Contains(r.stderr, "Did you mean this?\n\tls\n") {
		t.Errorf("drover user lss: want a did-you-mean:\n%s", r)
	}
	r = drover(t, t.TempDir(), "tokn")
	want = "drover: unknown command \"tokn\" for \"drover\"\n\nDid you mean this?\n\ttoken\n\nRun 'drover --help' for usage.\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("drover tokn: want\n%s\ngot\n%s", want, r)
	}
}

// A mistake in a command's flags or arguments points to that command's own help.
func TestUsageErrorNamesTheCommandsHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--stpe", "x"}, "drover: unknown flag: --stpe\nRun 'drover run --help' for usage.\n"},
		{[]string{"env", "show", "--bogus"}, "drover: unknown flag: --bogus\nRun 'drover env show --help' for usage.\n"},
		{[]string{"env", "show"}, "drover: accepts 1 arg(s), received 0\nRun 'drover env show --help' for usage.\n"},
		{[]string{"--bogus"}, "drover: unknown flag: --bogus\nRun 'drover --help' for usage.\n"},
	} {
		if r := drover(t, t.TempDir(), tc.args...); r.code != 2 || r.stderr != tc.want {
			t.Errorf("drover %v: want exit 2 and\n%s\ngot\n%s", tc.args, tc.want, r)
		}
	}
}

// Every error the CLI prints starts with "drover: ", and only a mistake in the command
// line sends the user to a help text.
func TestErrorsArePrefixed(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"deploy", "nosuch"},
		{"user", "add", "bob", "--server", "http://127.0.0.1:1", "--token", "x"},
		{"env", "ls", "--server", "http://127.0.0.1:1", "--token", "x"},
	} {
		r := drover(t, t.TempDir(), args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "drover: ") || strings.Contains(r.stderr, "--help") {
			t.Errorf("drover %v: want exit 2 and one message starting drover: \n%s", args, r)
		}
	}
}

// A pipeline's problems keep the FILE:LINE:COL form, every kind of them in one pass.
func TestValidateReportsEveryKindOfProblem(t *testing.T) {
	t.Parallel()
	r := drover(t, workspace(t, `steps:
  - name: test
    run: go test ./...
    timout: 5m
  - name: build
    needs: [tset, deploy]
    run: go build
  - name: test
    run: go vet ./...
  - name: deploy
    needs: [build]
    deploy: staging
`), "validate")
	want := `drover.yml:4:5: unknown step field "timout"; did you mean "timeout"?
drover.yml:5:5: dependency cycle: build → deploy → build
drover.yml:6:13: step "build" needs "tset", which is not a step; did you mean "test"?
drover.yml:8:5: step name "test" is used twice (first at line 2)
`
	if r.code != 2 || r.stderr != want {
		t.Errorf("want exit 2 and\n%s\ngot\n%s", want, r)
	}
}

// The server's answers are printed in the user's words, without the store's.
func TestServerErrorsAreReadable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server; skipped with -short")
	}
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"env", "show", "nosuchenv"}, "drover: environment \"nosuchenv\" not found (drover env ls lists them)\n"},
		{[]string{"env", "down", "nosuchenv"}, "drover: environment \"nosuchenv\" not found (drover env ls lists them)\n"},
		{[]string{"artifact", "list", "nosuch"}, "drover: project \"nosuch\" not found\n"},
		{[]string{"token", "revoke", "999"}, "drover: no token 999: see drover token ls\n"},
	} {
		if r := s.as(s.Token, tc.args...); r.code != 2 || r.stderr != tc.want {
			t.Errorf("drover %v: want exit 2 and\n%s\ngot\n%s", tc.args, tc.want, r)
		}
	}
	r := s.as(s.Token, "deploy", "nosuch", "--env", "staging")
	if r.code != 2 || !strings.HasSuffix(r.stderr, "drover: project \"nosuch\" not found\n") {
		t.Errorf("deploy of an unknown project:\n%s", r)
	}
}

func TestServerText(t *testing.T) {
	for in, want := range map[string]string{
		`store: environment "prod": not found`:                                 `environment "prod" not found (drover env ls lists them)`,
		`store: delete environment "prod": not found`:                          `environment "prod" not found (drover env ls lists them)`,
		`store: create deployment: environment "qa": not found`:                `environment "qa" not found (drover env ls lists them)`,
		`store: project "shop": not found`:                                     `project "shop" not found`,
		`store: run shop #3: not found`:                                        `run shop #3 not found`,
		`no secret FOO (global): drover secret ls --all lists them: not found`: `no secret FOO (global): drover secret ls --all lists them`,
		`staging runs nothing of shop: bad deploy request`:                     `staging runs nothing of shop`,
		`user bob exists already`:                                              `user bob exists already`,
	} {
		if got := serverText(in); got != want {
			t.Errorf("serverText(%q) = %q, want %q", in, got, want)
		}
	}
}
