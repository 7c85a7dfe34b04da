package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docker runs the docker CLI with its own config folder, so a login stays in the test.
func dockerCLI(t *testing.T, config string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// requireDocker skips without a reachable Docker Engine, except in CI, where .ci/run runs
// on machines that have one.
func requireDocker(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but the Docker Engine does not answer: %v\n%s", err, out)
		}
		t.Skipf("no Docker Engine reachable (%v): start dockerd to run this test", err)
	}
}

// The docker CLI pushes an image built FROM scratch to the built-in registry and pulls it
// back, authenticating with a Drover token.
func TestDockerPushAndPullThroughTheRegistry(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	s := startServer(t, t.TempDir(), "")
	config, ctx := t.TempDir(), t.TempDir()
	stamp := fmt.Sprint(time.Now().UnixNano())
	os.WriteFile(filepath.Join(ctx, "hello.txt"), []byte("hello "+stamp+"\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /hello.txt\n"), 0o644)
	host := strings.TrimPrefix(s.URL, "http://")
	image := host + "/demo/hello:" + stamp
	t.Cleanup(func() { dockerCLI(t, config, "", "rmi", "-f", image) })

	steps := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"build", "-q", "-t", image, ctx}},
		{s.Token, []string{"login", "-u", "admin", "--password-stdin", host}},
		{"", []string{"push", image}},
		{"", []string{"rmi", image}},
		{"", []string{"pull", image}},
	}
	for _, step := range steps {
		if out, err := dockerCLI(t, config, step.stdin, step.args...); err != nil {
			t.Fatalf("docker %s: %v\n%s\nserver log:\n%s", step.args[0], err, out, s.log)
		}
	}
	var tags struct{ Tags []string }
	if code := s.api("GET", "/v2/demo/hello/tags/list", "", nil, &tags); code != 200 || len(tags.Tags) != 1 || tags.Tags[0] != stamp {
		t.Errorf("tags: %d %v", code, tags.Tags)
	}
	if code := s.api("GET", "/v2/demo/hello/tags/list", "-", nil, nil); code != 401 {
		t.Errorf("anonymous registry read: %d, want 401", code)
	}
}
