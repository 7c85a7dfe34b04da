package pipeline

import (
	"strings"
	"testing"
)

func TestWhenMatches(t *testing.T) {
	tests := []struct {
		name string
		when When
		trig Trigger
		want bool
	}{
		{"empty matches all", When{}, Trigger{Branch: "x", Event: "cron"}, true},
		{"branch glob", When{Branch: []string{"release/*"}}, Trigger{Branch: "release/1.0"}, true},
		{"branch glob does not cross /", When{Branch: []string{"release/*"}}, Trigger{Branch: "release/1/hotfix"}, false},
		{"branch list", When{Branch: []string{"main", "dev"}}, Trigger{Branch: "dev"}, true},
		{"event", When{Event: []string{"tag"}}, Trigger{Event: "push"}, false},
		{"path doublestar", When{Path: []string{"**/*.go"}}, Trigger{Changed: []string{"a/b/c.go"}, ChangedKnown: true}, true},
		{"path none", When{Path: []string{"docs/**"}}, Trigger{Changed: []string{"main.go"}, ChangedKnown: true}, false},
		{"path unknown changes run", When{Path: []string{"docs/**"}}, Trigger{}, true},
		{"path no changes", When{Path: []string{"**"}}, Trigger{ChangedKnown: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := tt.when.Matches(tt.trig)
			if got != tt.want {
				t.Errorf("Matches = %v (%s), want %v", got, why, tt.want)
			}
			if !got && why == "" {
				t.Error("no reason given for not matching")
			}
		})
	}
}

func TestSelect(t *testing.T) {
	p, err := Parse("drover.yml", []byte(`
steps:
  - {name: lint, run: a}
  - {name: test, matrix: {V: [1, 2]}, run: b}
  - {name: build, run: c}
`))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := Compile(p)
	if err := g.Select([]string{"test", "build"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range g.Nodes {
		var needs []string
		for _, d := range n.Needs {
			needs = append(needs, d.Name)
		}
		got = append(got, n.Name+"<-"+strings.Join(needs, "+"))
	}
	want := "test (V=1)<-,test (V=2)<-,build<-test (V=1)+test (V=2)"
	if strings.Join(got, ",") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, ","), want)
	}
	g, _ = Compile(p)
	if err := g.Select([]string{"biuld"}); err == nil || !strings.Contains(err.Error(), `did you mean "build"`) {
		t.Errorf("unknown step: %v", err)
	}
}

func TestStatusFolding(t *testing.T) {
	for in, want := range map[string]Status{
		"failure":            StatusFailure,
		"always":             StatusAlways,
		"[success, failure]": StatusAlways,
		"success":            StatusSuccess,
	} {
		p, err := Parse("drover.yml", []byte("steps: [{name: a, run: b, when: {status: "+in+"}}]"))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Steps[0].When.Status; got != want {
			t.Errorf("status %s: got %s, want %s", in, got, want)
		}
	}
}

func TestNeedsMayNameALaterStep(t *testing.T) {
	p, err := Parse("drover.yml", []byte("steps:\n - {name: a, needs: [b], run: x}\n - {name: b, needs: [], run: y}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if g.Nodes[0].Name != "b" || g.Nodes[1].Name != "a" {
		t.Errorf("order %s, %s: a needs b, so b comes first", g.Nodes[0].Name, g.Nodes[1].Name)
	}
}
