package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gitTB runs git in dir and returns its trimmed output, failing the test on error.
func gitTB(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := gitOut(dir, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// gitOut runs git in dir and returns its combined output, also when it fails; unlike
// gitTB it may be called from any goroutine.
func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// workRepo isolates git from the machine's configuration, as isolateGit does, and returns
// a new repository on branch main. commit adds files to it and commits them.
func workRepo(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git is not installed")
	}
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL":       os.DevNull,
		"GIT_CONFIG_NOSYSTEM":     "1",
		"GIT_TERMINAL_PROMPT":     "0",
		"GIT_AUTHOR_NAME":         "Drover Test",
		"GIT_AUTHOR_EMAIL":        "test@drover.invalid",
		"GIT_COMMITTER_NAME":      "Drover Test",
		"GIT_COMMITTER_EMAIL":     "test@drover.invalid",
		"GIT_CEILING_DIRECTORIES": filepath.Dir(tb.TempDir()),
	} {
		tb.Setenv(k, v)
	}
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"} {
		tb.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	dir := tb.TempDir()
	gitTB(tb, dir, "init", "-q", "-b", "main")
	return dir
}

// commit writes files (path → content; "" deletes) in the working tree dir, commits them
// all with message msg and returns the new commit's hash.
func commit(tb testing.TB, dir, msg string, files map[string]string) string {
	tb.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if content == "" {
			if err := os.Remove(p); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	gitTB(tb, dir, "add", "-A")
	gitTB(tb, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return gitTB(tb, dir, "rev-parse", "HEAD")
}

// history is a bare repository with: root (a.txt, sub/b.txt) ← second (a.txt changed,
// c.txt added, sub/b.txt deleted) ← merge of a branch that added f.txt on root.
type history struct{ bare, root, second, feature, merge string }

func newHistory(t *testing.T) history {
	work := workRepo(t)
	var h history
	h.root = commit(t, work, "root", map[string]string{"a.txt": "a1\n", "sub/b.txt": "b\n"})
	h.second = commit(t, work, "second\n\nwith a body", map[string]string{"a.txt": "a2\n", "c.txt": "c", "sub/b.txt": ""})
	gitTB(t, work, "checkout", "-q", "-b", "feature", h.root)
	h.feature = commit(t, work, "feature", map[string]string{"f.txt": "f\n"})
	gitTB(t, work, "checkout", "-q", "main")
	gitTB(t, work, "merge", "-q", "--no-edit", "feature")
	h.merge = gitTB(t, work, "rev-parse", "HEAD")
	h.bare = filepath.Join(t.TempDir(), "repo.git")
	gitTB(t, "", "clone", "-q", "--bare", work, h.bare)
	return h
}

func TestCheckoutCommit(t *testing.T) {
	h := newHistory(t)
	ctx := context.Background()
	fresh := filepath.Join(t.TempDir(), "ws") // does not exist yet
	empty := t.TempDir()                      // exists, empty
	for _, tc := range []struct{ dest, commit, want string }{
		{fresh, h.root, "a.txt sub/b.txt"},
		{empty, h.second, "a.txt c.txt"},
	} {
		if err := CheckoutCommit(ctx, h.bare, tc.commit, tc.dest); err != nil {
			t.Fatalf("CheckoutCommit(%s): %v", tc.commit, err)
		}
		if got := gitTB(t, tc.dest, "ls-files"); strings.Join(strings.Fields(got), " ") != tc.want {
			t.Errorf("files at %s = %q, want %q", tc.commit, got, tc.want)
		}
		c, ok, err := Local(ctx, tc.dest)
		if err != nil || !ok || c.Commit != tc.commit || c.Branch != "" {
			t.Errorf("Local(dest) = %+v, %v, %v; want detached at %s", c, ok, err, tc.commit)
		}
		if st := gitTB(t, tc.dest, "status", "--porcelain"); st != "" {
			t.Errorf("working tree not clean:\n%s", st)
		}
	}
	// Tags and history come along: steps may run git describe or git log.
	gitTB(t, h.bare, "tag", "v1.0", h.root)
	dest := filepath.Join(t.TempDir(), "ws")
	if err := CheckoutCommit(ctx, h.bare, h.merge, dest); err != nil {
		t.Fatal(err)
	}
	if got := gitTB(t, dest, "describe", "--tags"); !strings.HasPrefix(got, "v1.0-") {
		t.Errorf("git describe --tags = %q, want v1.0-N-gHASH", got)
	}
	// A step that commits or makes branches in its workspace leaves the repository alone.
	refs := gitTB(t, h.bare, "for-each-ref")
	commit(t, dest, "step commit", map[string]string{"built.txt": "x"})
	gitTB(t, dest, "branch", "made-by-step")
	if got := gitTB(t, h.bare, "for-each-ref"); got != refs {
		t.Errorf("refs of the source repository changed:\n%s\nwant\n%s", got, refs)
	}
}

func TestCheckoutCommitErrors(t *testing.T) {
	h := newHistory(t)
	ctx := context.Background()

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644)
	if err := CheckoutCommit(ctx, h.bare, h.root, full); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("into a folder with files: err = %v, want 'not empty'", err)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(b) != "mine" {
		t.Errorf("keep.txt = %q after a refused checkout", b)
	}

	missing := strings.Repeat("1", 40)
	fresh := filepath.Join(t.TempDir(), "ws")
	err := CheckoutCommit(ctx, h.bare, missing, fresh)
	if err == nil || !strings.Contains(err.Error(), "git checkout") {
		t.Errorf("unknown commit: err = %v, want one naming git checkout", err)
	}
	if _, statErr := os.Stat(fresh); !errors.Is(statErr, fs.ErrNotExist) {
		t.Errorf("a failed checkout left %s behind (%v)", fresh, statErr)
	}
	empty := t.TempDir()
	if err := CheckoutCommit(ctx, h.bare, missing, empty); err == nil {
		t.Error("unknown commit into an empty folder: no error")
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("an empty destination should stay, empty: %v, %v", entries, err)
	}
	if err := CheckoutCommit(ctx, h.bare, "--upload-pack=evil", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("an option as commit: no error")
	}
	if err := CheckoutCommit(ctx, filepath.Join(t.TempDir(), "none.git"), h.root, filepath.Join(t.TempDir(), "x")); err == nil ||
		!strings.Contains(err.Error(), "git clone") {
		t.Errorf("missing repository: err = %v, want one naming git clone", err)
	}
}

func TestReadFile(t *testing.T) {
	h := newHistory(t)
	ctx := context.Background()
	for _, tc := range []struct{ commit, path, want string }{
		{h.root, "a.txt", "a1\n"},
		{h.second, "a.txt", "a2\n"},
		{h.second, "c.txt", "c"}, // no final newline: the bytes as committed
		{h.root, "sub/b.txt", "b\n"},
		{h.root, "/sub/b.txt", "b\n"},
		{h.root, "./sub/../sub/b.txt", "b\n"},
		{"main", "f.txt", "f\n"},
	} {
		got, err := ReadFileLimit(ctx, h.bare, tc.commit, tc.path, -1)
		if err != nil || string(got) != tc.want {
			t.Errorf("ReadFileLimit(%.7s, %s) = %q, %v; want %q", tc.commit, tc.path, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		commit, path string
		notExist     bool
	}{
		{h.second, "sub/b.txt", true}, // deleted
		{h.root, "nope.txt", true},
		{h.second, "sub", true}, // the folder went with its only file
		{h.root, "sub", false},  // a folder, not a file
		{strings.Repeat("2", 40), "a.txt", false},
		{"no-such-branch", "a.txt", false},
	} {
		_, err := ReadFileLimit(ctx, h.bare, tc.commit, tc.path, -1)
		if err == nil || errors.Is(err, fs.ErrNotExist) != tc.notExist {
			t.Errorf("ReadFileLimit(%.7s, %s): err = %v, want one with errors.Is(fs.ErrNotExist) = %v", tc.commit, tc.path, err, tc.notExist)
		}
	}
}

func TestCommitInfo(t *testing.T) {
	work := workRepo(t)
	t.Setenv("GIT_AUTHOR_DATE", "2024-03-01T12:30:00+01:00")
	hash := commit(t, work, "Add the thing\n\nA longer story.", map[string]string{"a": "a"})
	c, err := CommitInfo(context.Background(), work, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	want := Commit{Hash: hash, Subject: "Add the thing", Author: "Drover Test <test@drover.invalid>"}
	if c.Hash != want.Hash || c.Subject != want.Subject || c.Author != want.Author {
		t.Errorf("CommitInfo = %+v, want %+v", c, want)
	}
	if wantTime := time.Date(2024, 3, 1, 11, 30, 0, 0, time.UTC); !c.Time.Equal(wantTime) {
		t.Errorf("Time = %v, want %v", c.Time, wantTime)
	}
	if _, off := c.Time.Zone(); off != 3600 {
		t.Errorf("Time zone offset = %d s, want the author's +1h", off)
	}
	if _, err := CommitInfo(context.Background(), work, strings.Repeat("3", 40)); err == nil || !strings.Contains(err.Error(), "git show") {
		t.Errorf("unknown commit: err = %v, want one naming git show", err)
	}
}

func TestChangedFiles(t *testing.T) {
	h := newHistory(t)
	zeros := strings.Repeat("0", 40)
	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"between two commits", h.root, h.second, []string{"a.txt", "c.txt", "sub/b.txt"}},
		{"root commit", "", h.root, []string{"a.txt", "sub/b.txt"}},
		{"root commit, zeros", zeros, h.root, []string{"a.txt", "sub/b.txt"}},
		{"against the parent", "", h.second, []string{"a.txt", "c.txt", "sub/b.txt"}},
		{"merge against its first parent", "", h.merge, []string{"f.txt"}},
		{"a range with a merge", h.second, h.merge, []string{"f.txt"}},
		{"same commit", h.merge, h.merge, nil},
	} {
		got, err := ChangedFiles(context.Background(), h.bare, tc.old, tc.new)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: ChangedFiles = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := ChangedFiles(context.Background(), h.bare, strings.Repeat("4", 40), h.merge); err == nil ||
		!strings.Contains(err.Error(), "git diff-tree") {
		t.Errorf("unknown old commit: err = %v, want one naming git diff-tree", err)
	}
}

// BenchmarkCheckout measures CheckoutCommit of a small repository: 60 files in 3 commits.
// BenchmarkCheckout compares the two checkouts a run may get: borrowing the server's
// objects (the default) and copying them (for a step user who cannot read the server's
// repositories).
func BenchmarkCheckout(b *testing.B) {
	work := workRepo(b)
	var head string
	for c := range 3 {
		files := map[string]string{}
		for i := range 20 {
			files["dir"+strconv.Itoa(i%4)+"/file"+strconv.Itoa(c*20+i)+".go"] = strings.Repeat("package x // line\n", 50)
		}
		head = commit(b, work, "commit "+strconv.Itoa(c), files)
	}
	bare := filepath.Join(b.TempDir(), "repo.git")
	gitTB(b, "", "clone", "-q", "--bare", work, bare)
	for _, c := range []struct {
		name     string
		checkout func(ctx context.Context, repoDir, commit, dest string) error
	}{{"shared", CheckoutCommit}, {"copy", CheckoutCopy}} {
		b.Run(c.name, func(b *testing.B) {
			base := b.TempDir()
			i := 0
			for b.Loop() {
				dest := filepath.Join(base, strconv.Itoa(i))
				i++
				if err := c.checkout(context.Background(), bare, head, dest); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
