package docker

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// TarContext writes the build context dir as a tar stream to w, leaving out what its
// .dockerignore names (one glob per line, ** allowed, a leading ! re-includes, # starts
// a comment) and the .git folder.
func TarContext(dir string, w io.Writer) error {
	return TarLabelledContext(dir, "", nil, w)
}

// TarLabelledContext is TarContext with one LABEL instruction carrying labels appended
// to dockerfile (a path in dir). The classic builder makes a build step of each label
// it is given through the API, a second apiece; one instruction makes one step.
func TarLabelledContext(dir, dockerfile string, labels map[string]string, w io.Writer) error {
	ignore, err := readIgnore(filepath.Join(dir, ".dockerignore"))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == ".git" || ignored(ignore, rel) {
			if d.IsDir() && rel == ".git" {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if len(labels) > 0 && rel == filepath.ToSlash(filepath.Clean(dockerfile)) && info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data = append(data, labelInstruction(labels)...)
			hdr.Size = int64(len(data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("build context %s: %w", dir, err)
	}
	return tw.Close()
}

// readIgnore reads a .dockerignore; a missing one ignores nothing.
func readIgnore(path string) ([]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var pats []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"), "./")
		if neg {
			line = "!" + line
		}
		pats = append(pats, line)
	}
	return pats, sc.Err()
}

// ignored applies the patterns in order, the last match winning; a pattern matching a
// folder ignores what is inside it.
func ignored(pats []string, rel string) bool {
	out := false
	for _, p := range pats {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if ok, _ := doublestar.Match(p, rel); ok || matchesParent(p, rel) {
			out = !neg
		}
	}
	return out
}

func matchesParent(p, rel string) bool {
	for i := strings.Index(rel, "/"); i >= 0; {
		if ok, _ := doublestar.Match(p, rel[:i]); ok {
			return true
		}
		j := strings.Index(rel[i+1:], "/")
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// labelInstruction is "\nLABEL k=v ...\n" with the keys sorted and the values quoted.
func labelInstruction(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	b.WriteString("\nLABEL")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", strconv.Quote(k), strconv.Quote(labels[k]))
	}
	b.WriteString("\n")
	return b.String()
}
