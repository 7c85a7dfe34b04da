// Package source finds out about the git repository a project lives in: which branch and
// commit a checkout is at and which files a change touched.
package source

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Checkout is what git says about a working tree.
type Checkout struct {
	Dir    string
	Branch string // "" when HEAD is detached
	Commit string // full hash; "" before the first commit
}

// Local inspects the git working tree at dir. It returns ok=false, and no error, when dir
// is not inside a git repository or git is not installed.
func Local(ctx context.Context, dir string) (c Checkout, ok bool, err error) {
	c.Dir = dir
	// One git process for both answers: start-up of git dominates the cost.
	// --abbrev-ref applies to the names after it: the hash first, then the branch.
	out, err := git(ctx, dir, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
	if err != nil {
		// Not a repository, no git, or no commit yet: ask the cheaper question to tell which.
		if _, err2 := git(ctx, dir, "rev-parse", "--git-dir"); err2 != nil {
			return c, false, nil
		}
		branch, err := git(ctx, dir, "symbolic-ref", "--short", "HEAD")
		if err != nil {
			return c, true, nil
		}
		c.Branch = strings.TrimSpace(branch)
		return c, true, nil
	}
	lines := strings.Fields(out)
	if len(lines) == 2 {
		c.Commit = lines[0]
		if lines[1] != "HEAD" { // detached
			c.Branch = lines[1]
		}
	}
	return c, true, nil
}

// Changed lists the files that differ from the last commit (staged, unstaged and
// untracked, ignoring what .gitignore ignores); when the tree is clean it lists the files
// the last commit changed. Paths are relative to the repository root.
func (c Checkout) Changed(ctx context.Context) ([]string, error) {
	var files []string
	if c.Commit != "" {
		out, err := git(ctx, c.Dir, "diff", "--name-only", "-z", "HEAD")
		if err != nil {
			return nil, err
		}
		files = splitZ(out)
	} else {
		// No commit to compare with: everything staged so far is new.
		out, err := git(ctx, c.Dir, "ls-files", "--cached", "--full-name", "-z", ":/")
		if err != nil {
			return nil, err
		}
		files = splitZ(out)
	}
	// ":/" is the repository root: ls-files otherwise lists only below the current folder.
	out, err := git(ctx, c.Dir, "ls-files", "--others", "--exclude-standard", "--full-name", "-z", ":/")
	if err != nil {
		return nil, err
	}
	files = append(files, splitZ(out)...)
	if len(files) > 0 || c.Commit == "" {
		return files, nil
	}
	// A clean tree: what did the last commit change? (--root covers a first commit.)
	out, err = git(ctx, c.Dir, "diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", "HEAD")
	if err != nil {
		return nil, err
	}
	return splitZ(out), nil
}

func splitZ(s string) []string {
	var out []string
	for _, f := range strings.Split(s, "\x00") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
