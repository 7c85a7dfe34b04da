package pipeline

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// mergeBomb is 25 levels of `<<: [*below, *below]`: under 1 KB, 2^25 mappings expanded.
var mergeBomb = func() string {
	var b strings.Builder
	b.WriteString(".l0: &l0 {name: a}\n")
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&b, ".l%d: &l%d {<<: [*l%d, *l%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("steps:\n  - <<: *l25\n    run: echo\n")
	return b.String()
}()

// A file past a limit is refused with one positioned error: the alias that pushed the
// expansion over, or 1:1 for the file's size. Each want is the whole error.
func TestLimitsRefuse(t *testing.T) {
	step := "steps: [{name: a, run: b}]\n"
	cases := []struct {
		name  string
		parse func(string, []byte) error
		data  string
		want  string
	}{{
		name: "one byte over MaxFileSize",
		data: step + "#" + strings.Repeat("x", MaxFileSize-len(step)),
		want: "drover.yml:1:1: the file is 1048577 bytes; the limit is 1 MiB",
	}, {
		name: "25 nested merge keys",
		data: mergeBomb,
		// The levels up to 14 make about 98,000 nodes; .l14's first *l13, 49,149 more,
		// passes 100,000.
		want: "drover.yml:15:18: YAML: *l13 expands the file past the limit of 100000 nodes (aliases and merge keys count as the nodes they repeat)",
	}, {
		name: "billion laughs",
		data: `.a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
.b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
.c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
.d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
.e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
.f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
` + step,
		want: "drover.yml:5:37: YAML: *d expands the file past the limit of 100000 nodes (aliases and merge keys count as the nodes they repeat)",
	}, {
		name: "a step that merges itself",
		data: "steps:\n  - &s {name: a, run: b, <<: *s}\n",
		want: "drover.yml:2:30: YAML: *s is inside the node it names, so it would repeat without end",
	}, {
		name: "a list that holds itself",
		data: ".x: &x [a, *x]\n" + step,
		want: "drover.yml:1:12: YAML: *x is inside the node it names, so it would repeat without end",
	}, {
		name: "a long string repeated",
		data: ".s: &s " + strings.Repeat("x", 500_000) + "\nsteps: [{name: a, run: b, when: {event: [*s, *s, *s, *s, *s, *s, *s, *s, *s]}}]\n",
		// The 500,000 bytes written and 8 aliases of them pass 4 MiB (4,194,304) at the
		// 8th alias.
		want: "drover.yml:2:70: YAML: *s expands the file past the limit of 4 MiB of values (aliases and merge keys count as the text they repeat)",
	}, {
		name: "nodes written out",
		// The mapping, its key, the list and 99,998 items are 100,001 nodes.
		data: "x: [" + strings.Repeat("1,", maxNodes-3) + "2]\n",
		want: fmt.Sprintf("drover.yml:1:%d: YAML: the file has more than the limit of 100000 nodes", 5+2*(maxNodes-3)),
	}, {
		name: "matrices past maxSteps",
		data: ".m: &m {A: [1, 2, 3, 4], B: [1, 2, 3, 4], C: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]}\n" +
			"steps:\n" + "  - {name: a, run: b, matrix: *m}\n  - {name: b, run: b, matrix: *m}\n  - {name: c, run: b, matrix: *m}\n" +
			"  - {name: d, run: b, matrix: *m}\n  - {name: e, run: b, matrix: *m}\n",
		want: "drover.yml:7:5: step \"e\": the pipeline has more than the limit of 1024 steps once matrices are expanded",
	}, {
		name:  "environments.yml one byte over MaxFileSize",
		parse: func(f string, b []byte) error { _, err := ParseEnvironments(f, b); return err },
		data:  "environments: {}\n#" + strings.Repeat("x", MaxFileSize-17),
		want:  "environments.yml:1:1: the file is 1048577 bytes; the limit is 1 MiB",
	}, {
		name:  "environments.yml merge keys",
		parse: func(f string, b []byte) error { _, err := ParseEnvironments(f, b); return err },
		data:  strings.Replace(strings.ReplaceAll(mergeBomb, "{name: a}", "{track: main}"), "steps:\n  - <<: *l25\n    run: echo\n", "environments:\n  dev: *l25\n", 1),
		want:  "environments.yml:15:18: YAML: *l13 expands the file past the limit of 100000 nodes (aliases and merge keys count as the nodes they repeat)",
	}, {
		name:  "environments.yml that merges itself",
		parse: func(f string, b []byte) error { _, err := ParseEnvironments(f, b); return err },
		data:  "environments:\n  dev: &d {track: main, <<: *d}\n",
		want:  "environments.yml:2:29: YAML: *d is inside the node it names, so it would repeat without end",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file, parse := "drover.yml", func(f string, b []byte) error { _, err := Parse(f, b); return err }
			if c.parse != nil {
				file, parse = EnvironmentsFile, c.parse
			}
			err := parse(file, []byte(c.data))
			var list ErrorList
			if !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not an ErrorList", err, err)
			}
			if len(list) != 1 || err.Error() != c.want {
				t.Errorf("got  %.300s\nwant %s", err, c.want)
			}
		})
	}
}

// Files at a limit, and real uses of anchors, parse.
func TestLimitsAccept(t *testing.T) {
	step := "steps: [{name: a, run: b}]\n"
	cases := []struct {
		name string
		data string
	}{
		{"exactly MaxFileSize bytes", step + "#" + strings.Repeat("x", MaxFileSize-len(step)-2) + "\n"},
		// The mapping, .pad, its list, steps, its list, the step and its four scalars are
		// 10 nodes; the padding makes 100,000.
		{"exactly maxNodes nodes", ".pad: [" + strings.Repeat("1,", maxNodes-11) + "2]\n" + step},
		{"exactly maxSteps steps", ".m: &m {A: [1, 2, 3, 4], B: [1, 2, 3, 4], C: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]}\n" +
			"steps:\n  - {name: a, run: b, matrix: *m}\n  - {name: b, run: b, matrix: *m}\n  - {name: c, run: b, matrix: *m}\n" +
			"  - {name: d, run: b, matrix: {A: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32]}}\n"},
		{"defaults merged into 200 steps", func() string {
			var b strings.Builder
			b.WriteString(".defaults: &defaults\n  timeout: 10m\n  retry: 2\n  env: &env {GOFLAGS: -mod=readonly, CGO_ENABLED: \"0\", LANG: C}\n")
			b.WriteString("  run: |\n" + strings.Repeat("    go test ./...\n", 50))
			b.WriteString("steps:\n")
			for i := range 200 {
				fmt.Fprintf(&b, "  - <<: *defaults\n    name: test-%d\n    env: {<<: *env, SHARD: \"%d\"}\n", i, i)
			}
			return b.String()
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse("drover.yml", []byte(c.data)); err != nil {
				t.Fatalf("%.300v", err)
			}
		})
	}
}

// The expansion's count is what expanding every alias would make, for the nodes and for
// the bytes of their values, but without expanding.
func TestExpansionCountsTheExpandedTree(t *testing.T) {
	cases := []struct {
		data         string
		nodes, bytes int
	}{
		{"a: b", 3, 2},
		{"a: &x bc\nd: *x", 5, 6}, // the alias counts as bc
		// map, a, [b, c], d, and [*x, *x]: a list of two copies of [b, c].
		{"a: &x [b, c]\nd: [*x, *x]", 1 + 1 + 3 + 1 + 7, 8},
		// The merge's << counts too, and *x as the mapping {b: c}.
		{"a: &x {b: c}\nd: {<<: *x, e: f}", 1 + 1 + 3 + 1 + 7, 10},
		// An anchor inside an anchor.
		{"a: &x [&y z, *y]\nb: *x\nc: [*y, *x]", 1 + 1 + 3 + 1 + 3 + 1 + 5, 10},
		// *y is 7 nodes, so c is 15.
		{"a: &x [1, 1]\nb: &y [*x, *x]\nc: [*y, *y]", 1 + 1 + 3 + 1 + 7 + 1 + 15, 17},
	}
	for _, c := range cases {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(c.data), &doc); err != nil {
			t.Fatal(err)
		}
		// The same count, done by expanding: exponential, so only for small documents.
		var expand func(n *yaml.Node) (int, int)
		expand = func(n *yaml.Node) (int, int) {
			if n.Kind == yaml.AliasNode {
				return expand(n.Alias)
			}
			nodes, bytes := 1, len(n.Value)
			for _, c := range n.Content {
				cn, cb := expand(c)
				nodes, bytes = nodes+cn, bytes+cb
			}
			return nodes, bytes
		}
		wantNodes, wantBytes := expand(doc.Content[0])
		x := &expansion{sizes: map[*yaml.Node]size{}, open: map[*yaml.Node]bool{}}
		got := x.walk(doc.Content[0])
		if x.err != nil || got != x.total || got != (size{wantNodes, wantBytes}) || got != (size{c.nodes, c.bytes}) {
			t.Errorf("%q: walk %+v, total %+v, expanded %d nodes %d bytes, err %v", c.data, got, x.total, wantNodes, wantBytes, x.err)
		}
	}
}

// yaml.Unmarshal into a yaml.Node does not expand aliases: the merge bomb's tree has the
// nodes its text writes, each alias an AliasNode, not 2^25 mappings.
func TestUnmarshalKeepsAliases(t *testing.T) {
	data, err := os.ReadFile("testdata/invalid/merge-bomb.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	nodes, aliases := 0, 0
	stack := []*yaml.Node{&doc}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		nodes++
		if n.Kind == yaml.AliasNode {
			aliases++
		}
		stack = append(stack, n.Content...)
	}
	// 25 levels of 6 nodes (key, mapping, <<, list, two aliases), level 0's 4, the steps.
	if want := 2 + 25*6 + 4 + 7; nodes != want || aliases != 51 {
		t.Errorf("the tree has %d nodes, %d aliases; want %d and 51", nodes, aliases, want)
	}
}

// Past maxErrors problems, the list keeps the first ones by position and says how many
// more there are.
func TestErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("steps:\n  - name: a\n    run: b\n")
	for i := range 150 {
		fmt.Fprintf(&b, "    unknown%d: x\n", i)
	}
	_, err := Parse("drover.yml", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d: %.300v", len(list), maxErrors+1, err)
	}
	if got, want := list[maxErrors-1].Error(), `drover.yml:103:5: unknown step field "unknown99"`; got != want {
		t.Errorf("last listed: %s, want %s", got, want)
	}
	if got, want := list[maxErrors].Error(), "drover.yml:104:5: 50 more problems from here on are not listed; fix the ones above first"; got != want {
		t.Errorf("summary: %s, want %s", got, want)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"build", "build", 0},
		{"biuld", "build", 1}, // a swap of neighbours is one edit
		{"ca", "abc", 3},      // optimal string alignment: no edit of a swapped pair
		{"kitten", "sitting", 3}, {"steps", "step", 1},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
