package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// Where the server is not root it cannot switch users; it confines steps and instances
// with Landlock instead (Linux 5.13+): a process may then read and write only the paths
// its Confinement names, and (ABI 6+) cannot signal processes outside its domain, the
// server included. A confined process is started through `drover sandbox exec`, which
// confines itself and execs the command: Go cannot run code between fork and exec.

// LandlockABI returns the kernel's Landlock ABI version, 0 when it has none (or it is
// turned off).
func LandlockABI() int {
	v, err := llsyscall.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// MinLandlockABI is the least ABI Drover confines with: 6 is the first that also keeps
// a step from signalling the server, which runs as the same user.
const MinLandlockABI = 6

// Confinement is what a confined process may touch.
type Confinement struct {
	ReadOnly  []string // folders (or files) it may read and execute from
	ReadWrite []string // folders it may also write in
	// Hide are sockets it must not connect to, covered in a mount namespace of its own
	// (see hide.go). Hidden says that is done: the process runs in that namespace.
	Hide   []string
	Hidden bool
}

// System returns the folders every confined process reads: the system's programs,
// libraries and configuration, /proc and /sys, the folders on PATH (path), and /dev
// (writable: /dev/null, /dev/tty).
func System(path string) Confinement {
	ro := []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/sys", "/run"}
	for _, p := range filepath.SplitList(path) {
		if filepath.IsAbs(p) {
			ro = append(ro, p)
		}
	}
	return Confinement{ReadOnly: ro, ReadWrite: []string{"/dev"}}
}

// With returns c with more's paths added.
func (c Confinement) With(more Confinement) Confinement {
	return Confinement{
		ReadOnly:  append(append([]string(nil), c.ReadOnly...), more.ReadOnly...),
		ReadWrite: append(append([]string(nil), c.ReadWrite...), more.ReadWrite...),
		Hide:      append(append([]string(nil), c.Hide...), more.Hide...),
	}
}

// Command returns the argv that runs argv confined to c through the drover binary at
// self (`drover sandbox exec`).
func (c Confinement) Command(self string, argv []string) []string {
	out := []string{self, "sandbox", "exec"}
	for _, p := range c.ReadOnly {
		out = append(out, "--ro", p)
	}
	for _, p := range c.ReadWrite {
		out = append(out, "--rw", p)
	}
	for _, p := range c.Hide {
		out = append(out, "--hide", p)
	}
	if c.Hidden {
		out = append(out, "--hidden")
	}
	return append(append(out, "--"), argv...)
}

// Exec confines this process to c and replaces it with argv; it returns only on failure.
// Paths that do not exist are left out.
func Exec(c Confinement, argv []string) error {
	if len(argv) == 0 {
		return errors.New("sandbox exec: no command")
	}
	if abi := LandlockABI(); abi < MinLandlockABI {
		return fmt.Errorf("sandbox exec: this kernel's Landlock ABI is %d; confining needs %d (Linux 6.12+)", abi, MinLandlockABI)
	}
	if len(c.Hide) > 0 && !c.Hidden {
		return fmt.Errorf("sandbox exec: %w", hideAndExec(c, argv))
	}
	if c.Hidden {
		// Ambient capabilities belong to a thread: mount, drop them and exec from one.
		runtime.LockOSThread()
		if err := hide(c.Hide); err != nil {
			return fmt.Errorf("sandbox exec: %w", err)
		}
		if err := dropAmbient(); err != nil {
			return fmt.Errorf("sandbox exec: %w", err)
		}
	}
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("sandbox exec: %w", err)
	}
	// Paths in the command line are resolved before the rules close the rest.
	cfg := landlock.V6
	cfg.HandledAccessNet = 0 // steps fetch modules and tests listen on ports: not restricted
	var rules []landlock.Rule
	for _, p := range existing(c.ReadOnly) {
		rules = append(rules, ro(p))
	}
	for _, p := range existing(c.ReadWrite) {
		rules = append(rules, rw(p))
	}
	if err := cfg.Restrict(rules...); err != nil {
		return fmt.Errorf("sandbox exec: confine: %w", err)
	}
	return fmt.Errorf("sandbox exec: %w", syscall.Exec(prog, argv, os.Environ()))
}

// ro and rw are rules for a folder, or for a file (Landlock refuses folder rights on a
// file). A path removed since it was named (an entry of a carved /tmp) is skipped.
func ro(p string) landlock.Rule {
	if isDir(p) {
		return landlock.RODirs(p).IgnoreIfMissing()
	}
	return landlock.ROFiles(p).IgnoreIfMissing()
}

func rw(p string) landlock.Rule {
	if isDir(p) {
		return landlock.RWDirs(p).WithRefer().WithIoctlDev().IgnoreIfMissing()
	}
	return landlock.RWFiles(p).WithIoctlDev().IgnoreIfMissing()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// existing keeps the paths that exist, cleaned and without repeats.
func existing(paths []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		p = filepath.Clean(p)
		if _, err := os.Stat(p); err != nil || seen[p] || strings.TrimSpace(p) == "" {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// Excluding returns c with dir and everything below it out of reach. Landlock only
// allows, so a path above dir (/tmp for a data folder in /tmp) gives way to its entries
// other than the one leading to dir, as they are now; paths below dir that c names
// explicitly (a workspace) stay.
func (c Confinement) Excluding(dir string) Confinement {
	dir = filepath.Clean(dir)
	return Confinement{ReadOnly: carve(c.ReadOnly, dir), ReadWrite: carve(c.ReadWrite, dir), Hide: c.Hide}
}

func carve(paths []string, dir string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, carveOne(filepath.Clean(p), dir)...)
	}
	return out
}

// carveOne is p, or, when p is dir or above it, what of p is not dir.
func carveOne(p, dir string) []string {
	switch {
	case p == dir:
		return nil
	case !within(dir, p):
		return []string{p} // p is beside or below dir (a workspace in it): keep it
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, carveOne(filepath.Join(p, e.Name()), dir)...)
	}
	return out
}

// within reports whether path is below dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
