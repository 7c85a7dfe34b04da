package report

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Collect reads the reports a step declared, relative to the workspace dir:
// junit is a list of glob patterns (path/filepath.Glob semantics, "**" is
// not special) and coverage is one path, or "" for none. JUnit files are
// read in sorted order, each at most once, and their results added together;
// each Failure's File is the report it came from.
//
// A pattern that matches no regular file, or a coverage file that does not
// exist, is a warning, not an error. Patterns and paths must stay inside
// dir: absolute paths and ".." escapes are rejected before anything is read,
// and files are opened through an os.Root, so symbolic links cannot leave
// the workspace either.
//
// A file that fails to parse is an error naming the file; Collect still
// reads the other files, returns what they contained in s and joins the
// errors with errors.Join.
func Collect(dir string, junit []string, coverage string) (s Summary, warnings []string, err error) {
	patterns := make([]string, len(junit))
	for i, p := range junit {
		if patterns[i], err = localPath(p); err != nil {
			return Summary{}, nil, fmt.Errorf("report: junit pattern: %w", err)
		}
	}
	var covPath string
	if coverage != "" {
		if covPath, err = localPath(coverage); err != nil {
			return Summary{}, nil, fmt.Errorf("report: coverage path: %w", err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Summary{}, nil, fmt.Errorf("report: opening workspace: %w", err)
	}
	defer root.Close()
	fsys := root.FS()

	var files []string
	for i, p := range patterns {
		matches, err := fs.Glob(fsys, p)
		if err != nil {
			return Summary{}, nil, fmt.Errorf("report: junit pattern %q: %w", junit[i], err)
		}
		if len(matches) == 0 && !strings.ContainsAny(p, `*?[\`) {
			// fs.Glob hides why a plain path did not match; a path that
			// exists but escapes the workspace through a symlink is an error.
			if _, err := fs.Stat(fsys, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Summary{}, nil, fmt.Errorf("report: %w", err)
			}
		}
		n := 0
		for _, m := range matches {
			fi, err := fs.Stat(fsys, m)
			if err != nil {
				return Summary{}, nil, fmt.Errorf("report: %w", err)
			}
			if fi.Mode().IsRegular() {
				files = append(files, m)
				n++
			}
		}
		if n == 0 {
			warnings = append(warnings, fmt.Sprintf("junit pattern %q matched no files", junit[i]))
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)

	var errs []error
	for _, f := range files {
		t, err := readFile(root, f, "JUnit XML", parseJUnit)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range t.Failures {
			t.Failures[i].File = f
		}
		if s.Tests == nil {
			s.Tests = &Tests{}
		}
		s.Tests.Add(t)
		s.Files = append(s.Files, f)
	}

	if covPath != "" {
		c, err := readFile(root, covPath, "coverage", parseCoverage)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			warnings = append(warnings, fmt.Sprintf("coverage report %q not found", coverage))
		case err != nil:
			errs = append(errs, err)
		default:
			s.Coverage = &c
			s.Files = append(s.Files, covPath)
		}
	}
	slices.Sort(s.Files)
	s.Files = slices.Compact(s.Files)
	return s, warnings, errors.Join(errs...)
}

// readFile opens name in root and parses it as kind. Its errors name the
// file and wrap the underlying error (an *fs.PathError when opening fails).
func readFile[T any](root *os.Root, name, kind string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	// Without blocking, and checked once open: a step's leftover process may have put a
	// named pipe where the file was, which a plain open would wait on for ever.
	f, err := root.OpenFile(filepath.FromSlash(name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return zero, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return zero, fmt.Errorf("report: %w", err)
	} else if !fi.Mode().IsRegular() {
		return zero, fmt.Errorf("report: %s is not a regular file", name)
	}
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("report: %s: parsing %s: %w", name, kind, err)
	}
	return v, nil
}

// localPath checks that p is a relative path or pattern that stays inside
// the workspace and returns it cleaned, with forward slashes, for io/fs.
func localPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	slashed := filepath.ToSlash(p)
	if filepath.IsAbs(p) || filepath.VolumeName(p) != "" || strings.HasPrefix(slashed, "/") {
		return "", fmt.Errorf("%q is absolute; report paths must be relative to the workspace", p)
	}
	clean := path.Clean(slashed)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q leaves the workspace", p)
	}
	return clean, nil
}
