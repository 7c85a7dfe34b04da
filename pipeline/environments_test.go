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
		`environments.yml:5:19: runtime "kubernetes": use process, docker or swarm`,
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

func TestSwarmEnvironments(t *testing.T) {
	envs, err := ParseEnvironments("environments.yml", []byte(`
environments:
  production:
    runtime: swarm
    swarm: { host: "tcp://10.0.0.5:2376", tls: /etc/drover/swarm }
    services:
      web:
        replicas: 4
        placement: { spread: node.labels.zone, constraints: ["node.role==worker"] }
        resources: { cpu: "0.5", memory: 256m }
`))
	if err != nil {
		t.Fatal(err)
	}
	p := envs.List[0]
	web := p.Services["web"]
	if p.Runtime != RuntimeSwarm || p.Swarm != (Swarm{Host: "tcp://10.0.0.5:2376", TLS: "/etc/drover/swarm"}) || web == nil ||
		web.Replicas != 4 || web.Placement.Spread != "node.labels.zone" || len(web.Placement.Constraints) != 1 ||
		web.Resources != (Resources{CPU: "0.5", Memory: "256m"}) {
		t.Fatalf("production: %+v, web %+v", p, web)
	}

	_, err = ParseEnvironments("environments.yml", []byte(`environments:
  a: { runtime: swarm }
  b: { swarm: { host: "unix:///var/run/docker.sock" } }
  c: { runtime: swarm, swarm: { host: "http://h" } }
  d: { runtime: swarm, swarm: { host: "tcp://h:2376" }, services: { web: { placement: { constraints: [zone=a], spread: zone } } } }
`))
	got := err.Error()
	for _, want := range []string{
		`environments.yml:2:3: environment a: runtime: swarm needs swarm: {host: ...}`,
		`environments.yml:3:3: environment b: swarm: is for runtime: swarm`,
		`environments.yml:4:39: swarm.host "http://h": write unix:///PATH or tcp://HOST:PORT`,
		`placement constraint "zone=a": write ATTRIBUTE==VALUE`,
		`placement.spread "zone": name a node attribute like node.labels.zone`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}
