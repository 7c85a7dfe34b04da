package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Mirror keeps bareDir a copy of the branches and tags of the repository at url, for a
// project that lives on another git host. It creates bareDir as a bare repository when it
// is missing, fetches every branch and tag (forced, so rewritten history is followed, and
// pruned, so deleted branches and tags go) and returns the branches after the fetch as
// name → commit hash. Compare with the map of the previous call, or with Heads before it,
// using DiffHeads.
//
// Calls for the same bareDir made by this process wait for each other, and for pushes
// through Hosting to the same folder. git never asks for a password: a url that
// needs credentials it does not have fails. url is handed to git as is; it can be a local
// path, so a server that takes urls from its users should allow only https:// and ssh://.
func Mirror(ctx context.Context, url, bareDir string) (map[string]string, error) {
	if url == "" || strings.HasPrefix(url, "-") {
		return nil, fmt.Errorf("mirror: bad url %q", url)
	}
	unlock := lockRepo(bareDir)
	defer unlock()
	if _, err := os.Stat(bareDir); errors.Is(err, fs.ErrNotExist) {
		if _, err := runGit(ctx, "", nil, nil, "init", "--quiet", "--bare", "--template=", "--shared=0600", "--", bareDir); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	_, err := runGit(ctx, bareDir, nil, []string{"GIT_TERMINAL_PROMPT=0"},
		"fetch", "--quiet", "--prune", "--no-tags", "--", url,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
	if err != nil {
		return nil, err
	}
	return Heads(ctx, bareDir)
}

// RemoteHead returns the branch the repository at url names as its HEAD (its default
// branch), asking it with git ls-remote --symref; "" when it names none.
func RemoteHead(ctx context.Context, url string) (string, error) {
	if url == "" || strings.HasPrefix(url, "-") {
		return "", fmt.Errorf("remote head: bad url %q", url)
	}
	out, err := runGit(ctx, "", nil, []string{"GIT_TERMINAL_PROMPT=0"}, "ls-remote", "--symref", "--", url, "HEAD")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		// ref: refs/heads/main<TAB>HEAD
		if ref, ok := strings.CutPrefix(line, "ref: "); ok {
			ref, _, _ = strings.Cut(ref, "\t")
			if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
				return branch, nil
			}
		}
	}
	return "", nil
}

// Heads returns the branches of the bare repository at bareDir as name → commit hash, e.g. "main" → "3f1c…".
func Heads(ctx context.Context, bareDir string) (map[string]string, error) {
	refs, err := listRefs(ctx, bareDir, "refs/heads/")
	if err != nil {
		return nil, err
	}
	heads := make(map[string]string, len(refs))
	for ref, hash := range refs {
		heads[strings.TrimPrefix(ref, "refs/heads/")] = hash
	}
	return heads, nil
}

// DiffHeads compares two maps of branch name → commit hash, as Heads and Mirror return, and
// returns a RefUpdate, sorted by Ref, for each branch created, moved or deleted. Ref is the
// full name (refs/heads/BRANCH), as pushes to Hosting report it.
func DiffHeads(before, after map[string]string) []RefUpdate {
	ups := diffRefs(before, after)
	for i := range ups {
		ups[i].Ref = "refs/heads/" + ups[i].Ref
	}
	return ups
}

// diffRefs compares two maps of ref → hash; a ref missing on one side has "" there.
func diffRefs(before, after map[string]string) []RefUpdate {
	var ups []RefUpdate
	for ref, old := range before {
		if after[ref] != old {
			ups = append(ups, RefUpdate{Ref: ref, Old: old, New: after[ref]})
		}
	}
	for ref, new := range after {
		if _, ok := before[ref]; !ok {
			ups = append(ups, RefUpdate{Ref: ref, New: new})
		}
	}
	slices.SortFunc(ups, func(a, b RefUpdate) int { return strings.Compare(a.Ref, b.Ref) })
	return ups
}

// listRefs returns the refs of the repository at gitDir whose names start with prefix (all
// of them when prefix is "") as full name → hash.
func listRefs(ctx context.Context, gitDir, prefix string) (map[string]string, error) {
	args := []string{"--git-dir=" + gitDir, "for-each-ref", "--format=%(objectname) %(refname)"}
	if prefix != "" {
		args = append(args, prefix)
	}
	out, err := runGit(ctx, "", nil, nil, args...)
	if err != nil {
		return nil, err
	}
	refs := make(map[string]string)
	for _, line := range strings.Split(string(out), "\n") {
		if hash, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = hash
		}
	}
	return refs, nil
}
