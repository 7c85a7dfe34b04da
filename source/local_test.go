package source

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// isolateGit makes the system git ignore the machine's configuration, gives commits an
// author on a fresh machine and stops git from finding a repository above the test's
// temporary folders.
func isolateGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL":       os.DevNull,
		"GIT_CONFIG_NOSYSTEM":     "1",
		"GIT_AUTHOR_NAME":         "Drover Test",
		"GIT_AUTHOR_EMAIL":        "test@drover.invalid",
		"GIT_COMMITTER_NAME":      "Drover Test",
		"GIT_COMMITTER_EMAIL":     "test@drover.invalid",
		"GIT_CEILING_DIRECTORIES": filepath.Dir(t.TempDir()),
	} {
		t.Setenv(k, v)
	}
	// Variables a git hook or a surrounding git command may have set would point git at
	// another repository.
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// newRepo returns the root of an empty repository on branch main.
func newRepo(t *testing.T) string {
	t.Helper()
	isolateGit(t)
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	return dir
}

// gitRun runs git in dir and returns its trimmed output, failing the test on error.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// writeFile writes content to root/rel, making folders as needed.
func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	path := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// commitAll stages everything and commits it.
func commitAll(t *testing.T, root, msg string) {
	t.Helper()
	gitRun(t, root, "add", "-A")
	gitRun(t, root, "commit", "-q", "-m", msg)
}

func local(t *testing.T, dir string) Checkout {
	t.Helper()
	c, ok, err := Local(context.Background(), dir)
	if err != nil {
		t.Fatalf("Local(%s): %v", dir, err)
	}
	if !ok {
		t.Fatalf("Local(%s): ok = false, want true", dir)
	}
	if c.Dir != dir {
		t.Errorf("Dir = %q, want %q", c.Dir, dir)
	}
	return c
}

func changed(t *testing.T, c Checkout) []string {
	t.Helper()
	files, err := c.Changed(context.Background())
	if err != nil {
		t.Fatalf("Changed: %v", err)
	}
	slices.Sort(files)
	return files
}

func TestLocalNotARepository(t *testing.T) {
	isolateGit(t)
	dir := t.TempDir()
	c, ok, err := Local(context.Background(), dir)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if ok {
		t.Errorf("ok = true for a folder outside any repository: %+v", c)
	}
	if c.Branch != "" || c.Commit != "" {
		t.Errorf("Branch, Commit = %q, %q; want both empty", c.Branch, c.Commit)
	}
}

func TestLocalNoCommitYet(t *testing.T) {
	root := newRepo(t)
	c := local(t, root)
	if c.Branch != "main" {
		t.Errorf("Branch = %q, want main", c.Branch)
	}
	if c.Commit != "" {
		t.Errorf("Commit = %q, want empty before the first commit", c.Commit)
	}
}

func TestLocalAfterCommit(t *testing.T) {
	root := newRepo(t)
	writeFile(t, root, "a.txt", "a\n")
	commitAll(t, root, "first")
	writeFile(t, root, "sub/b.txt", "b\n")
	commitAll(t, root, "second")
	head := gitRun(t, root, "rev-parse", "HEAD")

	for _, dir := range []string{root, filepath.Join(root, "sub")} {
		c := local(t, dir)
		if c.Branch != "main" {
			t.Errorf("Local(%s): Branch = %q, want main", dir, c.Branch)
		}
		if c.Commit != head {
			t.Errorf("Local(%s): Commit = %q, want %q (git rev-parse HEAD)", dir, c.Commit, head)
		}
	}
}

func TestLocalOtherBranch(t *testing.T) {
	root := newRepo(t)
	writeFile(t, root, "a.txt", "a\n")
	commitAll(t, root, "first")
	gitRun(t, root, "checkout", "-q", "-b", "feature/login")

	c := local(t, root)
	if c.Branch != "feature/login" {
		t.Errorf("Branch = %q, want feature/login", c.Branch)
	}
}

func TestLocalDetachedHead(t *testing.T) {
	root := newRepo(t)
	writeFile(t, root, "a.txt", "a\n")
	commitAll(t, root, "first")
	first := gitRun(t, root, "rev-parse", "HEAD")
	writeFile(t, root, "a.txt", "a2\n")
	commitAll(t, root, "second")
	gitRun(t, root, "checkout", "-q", "--detach", first)

	c := local(t, root)
	if c.Branch != "" {
		t.Errorf("Branch = %q, want empty for a detached HEAD", c.Branch)
	}
	if c.Commit != first {
		t.Errorf("Commit = %q, want %q", c.Commit, first)
	}
}

// dirtyRepo makes a repository with one commit, then a modified file, a staged file, a
// deleted file, two untracked files (one at the root, one in sub/) and ignored files.
func dirtyRepo(t *testing.T) string {
	t.Helper()
	root := newRepo(t)
	writeFile(t, root, ".gitignore", "*.log\nbuild/\n")
	writeFile(t, root, "modified.txt", "v1\n")
	writeFile(t, root, "staged.txt", "v1\n")
	writeFile(t, root, "sub/keep.txt", "keep\n")
	writeFile(t, root, "untouched.txt", "same\n")
	writeFile(t, root, "gone.txt", "bye\n")
	commitAll(t, root, "first")

	if err := os.Remove(filepath.Join(root, "gone.txt")); err != nil {
		t.Fatal(err)
	}

	writeFile(t, root, "modified.txt", "v2\n")
	writeFile(t, root, "staged.txt", "v2\n")
	gitRun(t, root, "add", "staged.txt")
	writeFile(t, root, "new file.txt", "new\n")
	writeFile(t, root, "sub/new.go", "package sub\n")
	writeFile(t, root, "debug.log", "ignored\n")
	writeFile(t, root, "sub/trace.log", "ignored\n")
	writeFile(t, root, "build/out.bin", "ignored\n")
	return root
}

func TestChangedDirtyTree(t *testing.T) {
	want := []string{"gone.txt", "modified.txt", "new file.txt", "staged.txt", "sub/new.go"}
	root := dirtyRepo(t)
	for _, sub := range []string{".", "sub"} {
		t.Run("dir="+sub, func(t *testing.T) {
			c := local(t, filepath.Join(root, sub))
			if got := changed(t, c); !slices.Equal(got, want) {
				t.Errorf("Changed() from %s = %q, want %q (root-relative, ignored files left out)", sub, got, want)
			}
		})
	}
}

func TestChangedCleanTreeListsLastCommit(t *testing.T) {
	root := newRepo(t)
	writeFile(t, root, "a.txt", "a\n")
	writeFile(t, root, "b.txt", "b\n")
	writeFile(t, root, "sub/c.txt", "c\n")
	commitAll(t, root, "first")
	writeFile(t, root, "b.txt", "b2\n")
	writeFile(t, root, "sub/d.txt", "d\n")
	commitAll(t, root, "second")

	want := []string{"b.txt", "sub/d.txt"}
	for _, sub := range []string{".", "sub"} {
		t.Run("dir="+sub, func(t *testing.T) {
			c := local(t, filepath.Join(root, sub))
			if got := changed(t, c); !slices.Equal(got, want) {
				t.Errorf("Changed() = %q, want the last commit's files %q", got, want)
			}
		})
	}
}

func TestChangedCleanFirstCommit(t *testing.T) {
	root := newRepo(t)
	writeFile(t, root, "a.txt", "a\n")
	writeFile(t, root, "sub/c.txt", "c\n")
	commitAll(t, root, "first")

	want := []string{"a.txt", "sub/c.txt"}
	if got := changed(t, local(t, root)); !slices.Equal(got, want) {
		t.Errorf("Changed() = %q, want the root commit's files %q", got, want)
	}
}

func TestChangedNoCommitYet(t *testing.T) {
	root := newRepo(t)
	writeFile(t, root, ".gitignore", "*.log\n")
	writeFile(t, root, "staged.txt", "s\n")
	gitRun(t, root, "add", "staged.txt")
	writeFile(t, root, "untracked.txt", "u\n")
	writeFile(t, root, "debug.log", "ignored\n")

	// Before the first commit every file in the tree is new, the staged one included.
	want := []string{".gitignore", "staged.txt", "untracked.txt"}
	if got := changed(t, local(t, root)); !slices.Equal(got, want) {
		t.Errorf("Changed() = %q, want %q", got, want)
	}
}
