package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v4"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, must return either
// a pipeline that compiles or positioned errors, and every position must be in the file.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("steps: [{name: a, run: b, matrix: {A: [1,2], B: [3,4]}}, {name: c, needs: [a]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("drover.yml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors+1 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not a non-empty ErrorList of at most %d", err, err, maxErrors+1)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("error without position or message: %+v", e)
				}
			}
			return
		}
		g, err := Compile(p)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile: %v", err)
			}
			return
		}
		if len(g.Nodes) == 0 {
			t.Fatal("a valid pipeline compiled to no steps")
		}
		index := map[*Node]int{}
		for i, n := range g.Nodes {
			for _, dep := range n.Needs {
				if j, ok := index[dep]; !ok || j >= i {
					t.Fatalf("node %q comes before its need %q", n.Name, dep.Name)
				}
			}
			index[n] = i
		}
	})
}

// FuzzParseEnvironments feeds arbitrary bytes to the environments.yml parser: it must never
// panic; an error is a non-empty ErrorList of positioned problems, no longer than the cap;
// what parses is well-formed, and written back as YAML it parses to the same environments.
func FuzzParseEnvironments(f *testing.F) {
	for _, seed := range []string{
		"",
		"environments:\n  staging: { strategy: blue-green }\n  production: { strategy: blue-green, approval: release-manager }\n  ephemeral: { base: staging }\n",
		"environments:\n  integration: { track: main }\n  production: { strategy: rolling, approval: rm, replicas: 3, runtime: docker, separation: true }\n",
		"environments:\n  staging: { strategy: canary }\n  Prod: {}\n  qa: { tracks: main }\n  dev: { runtime: kubernetes }\n",
		"environments:\n  production: { track: main, approval: release-manager }\n",
		"environments:\n  dev:\n  qa: ~\n",
		".d: &d {strategy: rolling, replicas: 2}\nenvironments:\n  dev: {<<: *d, track: main}\n  qa: *d\n",
		"environments:\n  dev: &d {track: main, <<: *d}\n",
		"environments: [dev]\n",
	} {
		f.Add([]byte(seed))
	}
	if data, err := os.ReadFile("../examples/shop/system/environments.yml"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, err := ParseEnvironments(EnvironmentsFile, data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors+1 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not a non-empty ErrorList of at most %d", err, err, maxErrors+1)
			}
			for _, e := range list {
				if e.File != EnvironmentsFile || e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("error without file, position or message: %+v", e)
				}
			}
			return
		}
		out := map[string]any{}
		for i, e := range envs.List {
			switch {
			case i > 0 && envs.List[i-1].Name >= e.Name:
				t.Fatalf("environments not sorted by name, or repeated: %q, %q", envs.List[i-1].Name, e.Name)
			case !envNameRE.MatchString(e.Name) || e.Pos.Line < 1 || e.Pos.Col < 1:
				t.Fatalf("environment %+v: bad name or position", e)
			case e.Strategy != "blue-green" && e.Strategy != "rolling":
				t.Fatalf("environment %s: strategy %q", e.Name, e.Strategy)
			case e.Runtime != "" && e.Runtime != RuntimeProcess && e.Runtime != RuntimeDocker && e.Runtime != RuntimeSwarm,
				(e.Runtime == RuntimeSwarm) != (e.Swarm.Host != ""):
				t.Fatalf("environment %s: runtime %q", e.Name, e.Runtime)
			case e.Replicas < 0 || e.Replicas > 100:
				t.Fatalf("environment %s: replicas %d", e.Name, e.Replicas)
			case e.Track != "" && e.Approval != "":
				t.Fatalf("environment %s: both track and approval", e.Name)
			}
			m := map[string]any{"strategy": e.Strategy}
			for k, v := range map[string]string{"track": e.Track, "approval": e.Approval, "runtime": e.Runtime} {
				if v != "" {
					m[k] = v
				}
			}
			if e.Replicas > 0 {
				m["replicas"] = e.Replicas
			}
			if e.Separation {
				m["separation"] = true
			}
			if e.Swarm.Host != "" {
				m["swarm"] = map[string]any{"host": e.Swarm.Host, "tls": e.Swarm.TLS}
			}
			if e.Services != nil {
				svcs := map[string]any{}
				for name, s := range e.Services {
					svc := map[string]any{}
					if s.Replicas > 0 {
						svc["replicas"] = s.Replicas
					}
					if s.Placement.Spread != "" || s.Placement.Constraints != nil {
						svc["placement"] = map[string]any{"spread": s.Placement.Spread, "constraints": s.Placement.Constraints}
					}
					if s.Resources != (Resources{}) {
						svc["resources"] = map[string]any{"cpu": s.Resources.CPU, "memory": s.Resources.Memory}
					}
					svcs[name] = svc
				}
				m["services"] = svcs
			}
			out[e.Name] = m
		}
		if envs.EphemeralBase != "" {
			out["ephemeral"] = map[string]any{"base": envs.EphemeralBase}
		}
		again, err := yaml.Marshal(map[string]any{"environments": out})
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseEnvironments(EnvironmentsFile, again)
		if err != nil {
			t.Fatalf("written back as\n%s\nit does not parse: %v", again, err)
		}
		if len(back.List) != len(envs.List) || back.EphemeralBase != envs.EphemeralBase {
			t.Fatalf("written back as\n%s\nit parses to %+v, not %+v", again, back, envs)
		}
		for i, e := range envs.List {
			b := *back.List[i]
			b.Pos = e.Pos
			if !reflect.DeepEqual(b, *e) {
				t.Fatalf("written back as\n%s\nenvironment %+v parses to %+v", again, *e, b)
			}
		}
	})
}
