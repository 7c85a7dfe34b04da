package pipeline

import (
	"maps"
	"strings"
	"testing"
)

func TestAgentLabelsLayer(t *testing.T) {
	p, err := Parse("drover.yml", []byte(`agent:
  labels: {os: linux, docker: "true"}
steps:
  - name: build
    run: make
  - name: mac
    run: make
    agent: {labels: {os: macos, arch: arm64}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"build": {"os": "linux", "docker": "true"},
		"mac":   {"os": "macos", "docker": "true", "arch": "arm64"},
	}
	for _, s := range p.Steps {
		if !maps.Equal(s.Agent, want[s.Name]) {
			t.Errorf("step %s: labels %v, want %v", s.Name, s.Agent, want[s.Name])
		}
	}
	p, err = Parse("drover.yml", []byte("steps:\n  - name: a\n    run: x\n"))
	if err != nil || p.Steps[0].Agent != nil {
		t.Errorf("without agent: labels: %v, %v; want nil", p.Steps[0].Agent, err)
	}
}

func TestAgentLabelsRefused(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"agent: {labels: [linux]}\nsteps: [{name: a, run: x}]\n", "drover.yml:1:17: agent.labels must be a mapping"},
		{"agent: {labels: {'o s': linux}}\nsteps: [{name: a, run: x}]\n", `drover.yml:1:18: agent.labels: "o s" is not a label name`},
		{"steps:\n  - name: a\n    run: x\n    agent: {labels: {os: }}\n", "drover.yml:4:26: agent.labels: os needs a value"},
		{"steps:\n  - name: a\n    run: x\n    agent: {label: {os: linux}}\n", "drover.yml:4:13"},
	} {
		_, err := Parse("drover.yml", []byte(tc.yml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yml, err, tc.want)
		}
	}
}
