package source

import (
	"context"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMirror(t *testing.T) {
	ctx := context.Background()
	remote := workRepo(t)
	first := commit(t, remote, "first", map[string]string{"a.txt": "1"})
	gitTB(t, remote, "branch", "feature")
	gitTB(t, remote, "tag", "v1", first)
	gitTB(t, remote, "tag", "-a", "-m", "annotated", "v1-annotated", first)
	bare := filepath.Join(t.TempDir(), "mirrors", "proj.git") // parent missing too

	heads, err := Mirror(ctx, remote, bare)
	if err != nil {
		t.Fatalf("first Mirror: %v", err)
	}
	if want := map[string]string{"main": first, "feature": first}; !maps.Equal(heads, want) {
		t.Errorf("heads = %v, want %v", heads, want)
	}
	if got := gitTB(t, bare, "rev-parse", "--is-bare-repository"); got != "true" {
		t.Errorf("mirror is not bare: %s", got)
	}
	if got := gitTB(t, bare, "tag"); got != "v1\nv1-annotated" {
		t.Errorf("tags = %q, want v1 and v1-annotated", got)
	}
	if got, err := Heads(ctx, bare); err != nil || !maps.Equal(got, heads) {
		t.Errorf("Heads = %v, %v; want what Mirror returned, %v", got, err, heads)
	}
	ups := DiffHeads(nil, heads)
	want := []RefUpdate{{Ref: "refs/heads/feature", New: first}, {Ref: "refs/heads/main", New: first}}
	if !reflect.DeepEqual(ups, want) {
		t.Errorf("DiffHeads(nil, first) = %+v, want %+v", ups, want)
	}

	// Upstream moves main, rewrites feature, deletes a tag, adds a branch and removes one.
	second := commit(t, remote, "second", map[string]string{"a.txt": "2"})
	gitTB(t, remote, "checkout", "-q", "-b", "fix", first)
	fix := commit(t, remote, "fix", map[string]string{"b.txt": "b"})
	gitTB(t, remote, "branch", "-f", "feature", fix)
	gitTB(t, remote, "checkout", "-q", "main")
	gitTB(t, remote, "branch", "-D", "fix")
	gitTB(t, remote, "branch", "new", second)
	gitTB(t, remote, "tag", "-d", "v1")
	gitTB(t, remote, "checkout", "-q", "-b", "rewritten", first)
	rewritten := commit(t, remote, "rewritten", map[string]string{"c.txt": "c"})
	gitTB(t, remote, "checkout", "-q", "main")
	gitTB(t, remote, "branch", "-D", "rewritten")
	gitTB(t, remote, "branch", "-f", "feature", rewritten)

	before := heads
	after, err := Mirror(ctx, remote, bare)
	if err != nil {
		t.Fatalf("second Mirror: %v", err)
	}
	if want := map[string]string{"main": second, "feature": rewritten, "new": second}; !maps.Equal(after, want) {
		t.Errorf("heads = %v, want %v", after, want)
	}
	if got := gitTB(t, bare, "tag"); got != "v1-annotated" {
		t.Errorf("tags = %q, want the deleted v1 pruned", got)
	}
	ups = DiffHeads(before, after)
	want = []RefUpdate{
		{Ref: "refs/heads/feature", Old: first, New: rewritten},
		{Ref: "refs/heads/main", Old: first, New: second},
		{Ref: "refs/heads/new", New: second},
	}
	if !reflect.DeepEqual(ups, want) {
		t.Errorf("DiffHeads = %+v, want %+v", ups, want)
	}

	// History rewritten upstream (main goes back: not a fast-forward) is followed too.
	gitTB(t, remote, "reset", "-q", "--hard", first)
	gitTB(t, remote, "branch", "-D", "feature")
	after2, err := Mirror(ctx, remote, bare)
	if err != nil {
		t.Fatal(err)
	}
	ups = DiffHeads(after, after2)
	want = []RefUpdate{{Ref: "refs/heads/feature", Old: rewritten}, {Ref: "refs/heads/main", Old: second, New: first}}
	if !reflect.DeepEqual(ups, want) {
		t.Errorf("after a forced update and a deletion: DiffHeads = %+v, want %+v", ups, want)
	}
	if ups := DiffHeads(after2, after2); ups != nil {
		t.Errorf("DiffHeads of equal maps = %+v, want nil", ups)
	}
}

func TestMirrorErrors(t *testing.T) {
	workRepo(t)
	ctx := context.Background()
	bare := filepath.Join(t.TempDir(), "m.git")
	_, err := Mirror(ctx, filepath.Join(t.TempDir(), "no-such-repo"), bare)
	if err == nil || !strings.Contains(err.Error(), "git fetch") {
		t.Errorf("unreachable url: err = %v, want one naming git fetch", err)
	}
	if _, err := Mirror(ctx, "--upload-pack=touch /tmp/x", bare); err == nil {
		t.Error("an option as url: no error")
	}
	if _, err := Heads(ctx, filepath.Join(t.TempDir(), "none.git")); err == nil || !strings.Contains(err.Error(), "git") {
		t.Errorf("Heads of a missing repository: err = %v, want a git error", err)
	}
	// An empty remote mirrors to no branches, without error.
	empty := workRepo(t)
	if heads, err := Mirror(ctx, empty, filepath.Join(t.TempDir(), "e.git")); err != nil || len(heads) != 0 {
		t.Errorf("empty remote: heads, err = %v, %v; want none, nil", heads, err)
	}
}
