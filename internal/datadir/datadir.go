// Package datadir keeps the server's data folder private: the folder itself is 0711 (its
// names are not listed), the folders steps and instances must reach (work/ for
// workspaces, deploy/releases/ for unpacked releases) are 0711 as well, and everything
// else is 0700 for folders and 0600 for files, whatever the umask the server was started
// with. The server's own writers create files with those modes; Tighten brings a folder
// made by an older server, or touched by hand, in line.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Modes of the data folder's entries.
const (
	// Open is for the data folder and the folders below it that step and instance users
	// pass through: they may enter them but not list them.
	Open fs.FileMode = 0o711
	// File is the mode of a file only the server reads (folders: 0700).
	File fs.FileMode = 0o600
)

// Layout names what inside the data folder is not private to the server.
type Layout struct {
	// Shared are folders, relative to the data folder, that step and instance users
	// reach (workspaces owned by step users, unpacked releases instances read): they and
	// their parents are passages (mode Open), and Tighten leaves what is inside them
	// alone.
	Shared []string
}

// Tighten makes dir and its passages Open and every other folder and file under it
// private (group and other bits cleared), creating dir and the passages when missing. It
// does not follow symbolic links. It returns how many entries it changed.
func Tighten(dir string, l Layout) (int, error) {
	passage := map[string]bool{".": true}
	own := map[string]bool{}
	for _, p := range l.Shared {
		own[filepath.Clean(p)] = true
		for p = filepath.Clean(p); p != "." && p != "/"; p = filepath.Dir(p) {
			passage[p] = true
		}
	}
	for p := range passage {
		if err := os.MkdirAll(filepath.Join(dir, p), Open); err != nil {
			return 0, fmt.Errorf("data folder: %w", err)
		}
	}
	changed := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // chmod would follow it
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		perm := info.Mode().Perm()
		want := perm &^ 0o077 // the owner's bits stay: an executable stays one
		if passage[rel] {
			want = Open
		}
		if perm != want || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			if err := os.Chmod(path, want); err != nil {
				return fmt.Errorf("data folder: %w", err)
			}
			changed++
		}
		if d.IsDir() && own[rel] {
			return fs.SkipDir
		}
		return nil
	})
	return changed, err
}
