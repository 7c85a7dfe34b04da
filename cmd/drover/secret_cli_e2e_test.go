package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
)

// asWithStdin runs the drover CLI against s with token, stdin as its standard input.
func (s *testServer) asWithStdin(token, stdin string, args ...string) result {
	s.t.Helper()
	cmd := exec.Command(droverBin, append(args, "--server", s.URL, "--token", token)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			s.t.Fatalf("run drover: %v", err)
		}
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// The secret commands end to end: set (standard input, a file), list, set again,
// remove, rekey, the audit log; who is refused what; a rekey cut short is finished by
// the next start. No command's output, nor the server's log, ever shows a value.
func TestSecretCommandsEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	dev := s.mint("--role", "developer", "--name", "dana")
	viewer := s.mint("--role", "viewer", "--name", "val")
	repo := gitRepo(t, "steps:\n  - {name: hi, run: echo hi}\n")
	git(t, repo, "push", "-q", s.pushURL("shop"), "main")
	var outputs []string
	run := func(token, stdin string, args ...string) result {
		t.Helper()
		res := s.asWithStdin(token, stdin, args...)
		outputs = append(outputs, res.stdout, res.stderr)
		return res
	}
	valueFile := func(value string) string {
		f := filepath.Join(t.TempDir(), "value")
		if err := os.WriteFile(f, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	const first, second, global, prod = "e2e-first-value-7f3", "e2e-second-value-9c1", "e2e-global-value-2d8", "e2e-prod-value-4b6"

	// A developer sets a project's secret for staging, from standard input.
	res := run(dev, first+"\n", "secret", "set", "DB_PASSWORD", "--project", "shop", "--env", "staging")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "set DB_PASSWORD (project shop, env staging): version 1" {
		t.Fatalf("secret set from stdin: %s", res)
	}
	// Again, from a file: version 2.
	res = run(dev, "", "secret", "set", "DB_PASSWORD", "--project", "shop", "--env", "staging", "--from-file", valueFile(second))
	if res.code != 0 || !strings.Contains(res.stdout, "version 2") {
		t.Fatalf("secret set again: %s", res)
	}
	// The admin sets a global one for release branches.
	res = run(s.Token, "", "secret", "set", "SENTRY_DSN", "--branch", "release/*", "--from-file", valueFile(global))
	if res.code != 0 || strings.TrimSpace(res.stdout) != "set SENTRY_DSN (global, branches release/*): version 1" {
		t.Fatalf("secret set a global one: %s", res)
	}

	// What a developer, a viewer and anyone else is refused.
	for _, c := range []struct {
		what, token string
		args        []string
		says        string
	}{
		{"a developer sets production's", dev, []string{"DB_PASSWORD", "--project", "shop", "--env", "production"}, "release-manager approval role"},
		{"a developer sets a global one", dev, []string{"DB_PASSWORD"}, "global secrets (for every project) need an admin"},
		{"a viewer sets one", viewer, []string{"DB_PASSWORD", "--project", "shop"}, "needs the developer role"},
		{"a 3-byte value", s.Token, []string{"DB_PASSWORD", "--project", "shop", "--from-file", valueFile("abc")}, "could not be masked"},
		{"a bad name", s.Token, []string{"db-password", "--project", "shop"}, "[A-Z_][A-Z0-9_]*"},
	} {
		res := run(c.token, prod+"\n", append([]string{"secret", "set"}, c.args...)...)
		if res.code == 0 || !strings.Contains(res.stderr, c.says) {
			t.Errorf("%s: %s\nwant a refusal saying %q", c.what, res, c.says)
		}
	}
	if res := run(dev, "", "secret", "rekey"); res.code == 0 || !strings.Contains(res.stderr, "admin") {
		t.Errorf("a developer rekeys: %s", res)
	}

	// A viewer lists them: never a value.
	res = run(viewer, "", "secret", "ls", "--project", "shop")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 3 ||
		!regexp.MustCompile(`^NAME\s+SCOPE\s+BRANCH\s+VERSION\s+CHANGED-BY\s+CHANGED$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^DB_PASSWORD\s+project shop, env staging\s+-\s+2\s+dana\s+\d{4}-\d\d-\d\d \d\d:\d\d$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^SENTRY_DSN\s+global\s+release/\*\s+1\s+admin\s+`).MatchString(lines[2]) {
		t.Errorf("secret ls --project shop:\n%s", res)
	}

	// Remove, then it is gone; removing it again says so.
	res = run(dev, "", "secret", "rm", "DB_PASSWORD", "--project", "shop", "--env", "staging")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "removed DB_PASSWORD (project shop, environment staging)" {
		t.Errorf("secret rm: %s", res)
	}
	if res := run(viewer, "", "secret", "ls", "--all"); strings.Contains(res.stdout, "DB_PASSWORD") || !strings.Contains(res.stdout, "SENTRY_DSN") {
		t.Errorf("secret ls --all after rm:\n%s", res)
	}
	if res := run(dev, "", "secret", "rm", "DB_PASSWORD", "--project", "shop", "--env", "staging"); res.code == 0 || !strings.Contains(res.stderr, "no secret DB_PASSWORD") {
		t.Errorf("secret rm twice: %s", res)
	}

	// Rekey: a new key file, every value still there.
	keyFile := filepath.Join(s.Data, "secret.key")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	res = run(s.Token, "", "secret", "rekey")
	if res.code != 0 || !regexp.MustCompile(`^re-encrypted 1 value under key [0-9a-f]{8}\n$`).MatchString(res.stdout) {
		t.Errorf("secret rekey: %s", res)
	}
	after, _ := os.ReadFile(keyFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 || bytes.Equal(before, after) {
		t.Errorf("the key file after a rekey: %v, changed %v", err, !bytes.Equal(before, after))
	}

	// The audit log has it all, and no value.
	res = run(viewer, "", "audit")
	for _, want := range []string{
		`dana\s+secret-set\s+staging\s+shop\s+.*DB_PASSWORD \(project shop, environment staging\): version 1`,
		`dana\s+secret-set\s+staging\s+shop\s+.*version 2`,
		`admin\s+secret-set\s+.*SENTRY_DSN \(global\): version 1, branches "release/\*"`,
		`dana\s+secret-rm\s+staging\s+shop\s+.*removed at version 2`,
		`admin\s+secret-rekey\s+.*re-encrypted 1 value under key`,
	} {
		if !regexp.MustCompile(want).MatchString(res.stdout) {
			t.Errorf("drover audit has no line like %s:\n%s", want, res.stdout)
		}
	}

	// The project's default branch came with its first push; an admin changes it.
	res = run(s.Token, "", "project", "set", "shop", "--default-branch", "trunk", "--branch-secrets=true")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "shop: default branch trunk; other branches of a followed repository get secrets too" {
		t.Errorf("project set --default-branch: %s", res)
	}
	if !strings.Contains(run(viewer, "", "audit").stdout, `default branch "trunk" (was "main"), branch secrets true`) {
		t.Errorf("the audit log does not show the default branch's change")
	}

	// A rekey cut short (the new key written beside the old) is finished at the next start.
	s.stop(syscall.SIGTERM)
	next := []byte(strings.Repeat("5a", 32) + "\n")
	if err := os.WriteFile(keyFile+".new", next, 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	if !strings.Contains(s.log.String(), "finished the secrets' rekey that was cut short") {
		t.Errorf("the start did not finish the rekey:\n%s", s.log)
	}
	if got, _ := os.ReadFile(keyFile); !bytes.Equal(got, next) {
		t.Errorf("after the start the key file holds %q, want the new key", got)
	}
	if _, err := os.Stat(keyFile + ".new"); err == nil {
		t.Error("the new key file is still there")
	}
	if res := run(s.Token, "", "audit"); !regexp.MustCompile(`drover\s+secret-rekey\s+.*finished a rekey that was cut short: re-encrypted 1 value`).MatchString(res.stdout) {
		t.Errorf("the audit log does not show the finished rekey:\n%s", res.stdout)
	}

	for _, out := range append(outputs, s.log.String()) {
		for _, value := range []string{first, second, global, prod} {
			if strings.Contains(out, value) {
				t.Errorf("an output shows %q:\n%s", value, out)
			}
		}
	}
}

// A key file others may read stops the server, saying what to do.
func TestServerRefusesAnOpenKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "shared.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(key, 0o644)
	res := drover(t, "", "server", "--data", dir, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
		"--step-uids", "off", "--service-uids", "off", "--secret-key-file", key)
	if res.code != exitBadInput || !strings.Contains(res.stderr, "chmod 600 "+key) {
		t.Errorf("a server with a key file others may read: %s", res)
	}
}

func TestSecretCommandsHaveHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"secret", "secret set", "secret ls", "secret rm", "secret rekey", "project set"} {
		r := drover(t, t.TempDir(), append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || (cmd != "secret" && !strings.Contains(r.stdout, "Examples:")) {
			t.Errorf("drover %s --help:\n%s", cmd, r)
		}
	}
	if r := drover(t, t.TempDir(), "server", "--help"); !strings.Contains(r.stdout, "--secret-key-file") {
		t.Errorf("server --help does not show --secret-key-file:\n%s", r.stdout)
	}
}

// From standard input one trailing newline goes (CRLF counts as one); from a file
// nothing does.
func TestSecretValueFromStdinLosesOneNewline(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"value\n": "value", "value\n\n": "value\n", "value": "value", "value\r\n": "value", "two\nlines\n": "two\nlines",
	} {
		cmd := &cobra.Command{}
		cmd.SetIn(strings.NewReader(in))
		got, err := readSecretValue(cmd, "")
		if err != nil || string(got) != want {
			t.Errorf("stdin %q: %q, %v; want %q", in, got, err, want)
		}
	}
	f := filepath.Join(t.TempDir(), "v")
	os.WriteFile(f, []byte("value\n"), 0o600)
	if got, err := readSecretValue(&cobra.Command{}, f); err != nil || string(got) != "value\n" {
		t.Errorf("--from-file: %q, %v", got, err)
	}
}
