package agent

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// keepPristine is how many commits of a repository keep a pristine checkout.
const keepPristine = 4

// checkout makes dir a checkout of commit of the repository at url. The agent keeps a
// copy of each repository (WorkDir/repos/KEY.git), fetched from only when it lacks the
// commit, and a pristine checkout of its last few commits (WorkDir/pristine/KEY-COMMIT),
// which each new workspace is a copy of: a run after the first of a commit starts no git
// process at all, and a commit after the first of a project fetches only what is new.
func (a *agent) checkout(l *lease, url, commit, dir string) error {
	sum := sha256.Sum256([]byte(url))
	key := hex.EncodeToString(sum[:8])
	cache := filepath.Join(a.dir, "repos", key+".git")
	lock := a.repoLock(cache)
	lock.Lock()
	defer lock.Unlock()
	pristine := filepath.Join(a.dir, "pristine", key+"-"+commit)
	if _, err := os.Stat(pristine); errors.Is(err, fs.ErrNotExist) {
		if err := a.fetch(l, cache, url, commit); err != nil {
			return err
		}
		if err := a.makePristine(l, cache, commit, pristine); err != nil {
			return err
		}
		a.evictPristine(key, pristine)
	} else if err != nil {
		return err
	}
	if err := copyTree(pristine, dir); err != nil {
		return fmt.Errorf("copy the checkout: %w", err)
	}
	return nil
}

// repoLock is the lock of one repository of the cache.
func (a *agent) repoLock(cache string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	lock := a.repoLocks[cache]
	if lock == nil {
		lock = &sync.Mutex{}
		a.repoLocks[cache] = lock
	}
	return lock
}

// fetch makes sure the repository cache holds commit, fetching it from url when not.
func (a *agent) fetch(l *lease, cache, url, commit string) error {
	if _, err := os.Stat(filepath.Join(cache, "HEAD")); err != nil {
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return err
		}
		if _, err := l.git(cache, "init", "-q", "--bare"); err != nil {
			return err
		}
	}
	if _, err := l.git(cache, "cat-file", "-e", commit+"^{commit}"); err == nil {
		return nil
	}
	// Under a ref of its own, so nothing ever takes it for garbage.
	if _, err := l.git(cache, "fetch", "-q", url, "+"+commit+":refs/drover/"+commit); err != nil {
		// A server that does not give commits by id gives its branches.
		l.log.Debug("fetch the commit by id failed; fetching every branch", "err", err)
		if _, err2 := l.git(cache, "fetch", "-q", url, "+refs/heads/*:refs/heads/*"); err2 != nil {
			return fmt.Errorf("fetch commit %s: %w", commit, errors.Join(err, err2))
		}
	}
	return nil
}

// makePristine checks commit out into pristine, a repository borrowing the cache's
// objects (as clone --shared does), whole or not at all.
func (a *agent) makePristine(l *lease, cache, commit, pristine string) error {
	tmp := pristine + ".new"
	_ = os.RemoveAll(tmp)
	git := filepath.Join(tmp, ".git")
	for _, d := range []string{"objects/info", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(git, d), 0o700); err != nil {
			return err
		}
	}
	objects, err := filepath.Abs(filepath.Join(cache, "objects"))
	if err != nil {
		return err
	}
	for name, content := range map[string]string{
		"HEAD":                    commit + "\n",
		"config":                  "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n",
		"objects/info/alternates": objects + "\n",
	} {
		if err := os.WriteFile(filepath.Join(git, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	if _, err := l.git(tmp, "reset", "-q", "--hard", commit); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, pristine)
}

// evictPristine removes the pristine checkouts of repository key but the newest
// keepPristine; keep is the one just made. Called with the repository's lock held.
func (a *agent) evictPristine(key, keep string) {
	dirs, _ := filepath.Glob(filepath.Join(a.dir, "pristine", key+"-*"))
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return d == keep || strings.HasSuffix(d, ".new") })
	if len(dirs) < keepPristine {
		return
	}
	mod := func(d string) int64 {
		if fi, err := os.Stat(d); err == nil {
			return fi.ModTime().UnixNano()
		}
		return 0
	}
	slices.SortFunc(dirs, func(x, y string) int { return cmp.Compare(mod(x), mod(y)) })
	for _, d := range dirs[:len(dirs)-keepPristine+1] {
		_ = os.RemoveAll(d)
	}
}

// copyTree copies the tree at src (files with their modes, folders, symlinks) to dst,
// which must not exist.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(path, to, info.Mode().Perm())
		}
		return nil // nothing else is in a checkout
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
