package sandbox

import (
	"os"
	"path/filepath"
)

// StepConfiner confines each run's steps with Landlock, for a server that is not root
// (its steps run as its own user): a step reads the system and its project's
// repository, and writes only its workspace, its project's home, its own temporary
// folder, /tmp and /dev. It cannot read the data folder, another run's workspace or
// another project's home, and cannot signal the server or other runs.
type StepConfiner struct {
	// Self is the drover binary, which confines a step's shell (drover sandbox exec).
	Self string
	// Home is the folder of the projects' homes, Home/<project>.
	Home string
	// Path is the PATH steps get; its folders are readable.
	Path string
	// Data is the server's data folder, which no rule may reach but for the paths a
	// run is given in it.
	Data string
	// Hide are sockets steps must not reach although the server's user may (the Docker
	// Engine's); see Confinement.Hide.
	Hide []string
}

// Instance returns the launcher of a service instance of the release unpacked in dir:
// it reads the system and its release, and writes only /tmp (less data) and /dev.
func Instance(self, path, data, dir string, hide []string) []string {
	c := System(path).With(Confinement{ReadWrite: []string{os.TempDir()}}).Excluding(data).With(Confinement{ReadOnly: []string{dir}, Hide: hide})
	return c.Command(self, nil)
}

// SharedCheckout is true: a confined step may read its project's repository.
func (s *StepConfiner) SharedCheckout() bool { return true }

// Lease confines the steps of a run; slot is unused (they all run as the server's user).
func (s *StepConfiner) Lease(_ int, project, workspace, repo string) (*Lease, func(), error) {
	if err := homeName(project); err != nil {
		return nil, nil, err
	}
	home := filepath.Join(s.Home, project)
	tmp := workspace + ".tmp"
	for _, d := range []string{home, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, err
		}
	}
	c := System(s.Path).With(Confinement{ReadWrite: []string{os.TempDir()}}).Excluding(s.Data).With(Confinement{
		// The workspace borrows the repository's objects (git clone --shared).
		ReadOnly:  []string{filepath.Join(repo, "objects")},
		ReadWrite: []string{workspace, home, tmp},
		Hide:      s.Hide,
	})
	end := func() { os.RemoveAll(tmp) }
	return &Lease{Launcher: c.Command(s.Self, nil), Env: append(homeEnv(home), "TMPDIR="+tmp)}, end, nil
}
