package pipeline

import (
	"strings"
	"testing"
)

func TestParseEnvironments(t *testing.T) {
	envs, err := ParseEnvironments("environments.yml", []byte(`
environments:
  integration: { track: main }
  staging:     { strategy: blue-green }
  production:  { strategy: rolling, approval: release-manager, replicas: 3, runtime: docker }
  ephemeral:   { base: staging }
`))
	if err != nil {
		t.Fatal(err)
	}
	if envs.EphemeralBase != "staging" || len(envs.List) != 3 {
		t.Fatalf("parsed %+v", envs)
	}
	p := envs.List[1]
	if p.Name != "production" || p.Strategy != "rolling" || p.Approval != "release-manager" || p.Replicas != 3 || p.Runtime != "docker" {
		t.Errorf("production: %+v", p)
	}
	if i := envs.List[0]; i.Name != "integration" || i.Track != "main" || i.Strategy != "blue-green" || i.Pos.Line != 3 {
		t.Errorf("integration: %+v", i)
	}
}

func TestEnvironmentsErrorsNameLineAndColumn(t *testing.T) {
	_, err := ParseEnvironments("environments.yml", []byte(`environments:
  staging: { strategy: canary }
  Prod: {}
  qa: { tracks: main }
  dev: { runtime: kubernetes }
`))
	got := err.Error()
	for _, want := range []string{
		`environments.yml:2:24: strategy "canary": use blue-green or rolling`,
		`environments.yml:3:3: environment name "Prod"`,
		`environments.yml:4:9: `, `did you mean "track"`,
		`environments.yml:5:19: runtime "kubernetes": use process or docker`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}

func TestTrackAndApprovalDoNotGoTogether(t *testing.T) {
	_, err := ParseEnvironments("environments.yml", []byte("environments:\n  production: { track: main, approval: release-manager }\n"))
	if err == nil || !strings.Contains(err.Error(), "environments.yml:2:3: environment production: track and approval do not go together") {
		t.Errorf("err = %v", err)
	}
}
