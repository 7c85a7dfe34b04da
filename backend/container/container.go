// Package container is the step backend for steps that need the Docker Engine: a step
// with image: runs its script in a container of that image with the workspace mounted, its
// services: run beside it as containers reachable by name, and a build: step builds an
// image and pushes it to Drover's registry as the run's image. A step with services:
// and its sidecars join a network of the run's own, removed when the run ends; other
// step containers use the engine's default bridge. Steps that need no container go to
// the local backend as before.
package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
)

var (
	_ engine.Backend   = (*Backend)(nil)
	_ engine.Supporter = (*Backend)(nil)
	_ engine.RunEnder  = (*Backend)(nil)
)

// Backend runs container steps on a Docker Engine and hands the rest to Local.
type Backend struct {
	// Engine connects to the Docker Engine; docker.Lazy gives one that connects on first
	// use, so a machine without an engine runs every other step.
	Engine func(context.Context) (*docker.Engine, error)
	// Local runs steps without image:, services: or build:. Required.
	Local engine.Backend
	// Grace is how long a stopped step's container gets between SIGTERM and SIGKILL.
	// Default: 10s.
	Grace time.Duration

	mu       sync.Mutex
	networks map[string]bool // the runs whose network exists
	building map[string]int  // image references build: steps are making and pushing now
}

// needsEngine reports whether s runs on the Docker Engine.
func needsEngine(s *pipeline.Step) bool {
	return s.Image != "" || len(s.Services) > 0 || s.Build != nil
}

// Supports accepts every container step and asks Local about the others.
func (b *Backend) Supports(s *pipeline.Step) error {
	if needsEngine(s) {
		return nil
	}
	if sup, ok := b.Local.(engine.Supporter); ok {
		return sup.Supports(s)
	}
	return nil
}

// Exec runs the step; see engine.Backend.
func (b *Backend) Exec(ctx context.Context, spec *engine.Spec, out io.Writer) (int, error) {
	s := spec.Step
	if !needsEngine(s) {
		return b.Local.Exec(ctx, spec, out)
	}
	e, err := b.Engine(ctx)
	if err != nil {
		return -1, err
	}
	if s.Build != nil {
		return b.build(ctx, e, spec, out)
	}
	if s.Image == "" {
		return -1, errors.New("services: are reached by name from a container: give the step image: too")
	}
	// Only a step with sidecars joins the run's network: there is nothing else to reach
	// by name, and a user-defined network costs ~150 ms per container (bench/docker.sh).
	net := ""
	if len(s.Services) > 0 {
		if net, err = b.network(ctx, e, spec.Run); err != nil {
			return -1, err
		}
	}
	ref, err := b.image(ctx, e, s.Image, spec.Self, out)
	if err != nil {
		return -1, err
	}
	stop, err := b.sidecars(ctx, e, spec, net, out)
	if err != nil {
		stop(true)
		return -1, err
	}
	code, err := e.Run(ctx, docker.Container{
		Image:      ref,
		Entrypoint: []string{"/bin/sh", "-e", "-c", spec.Script},
		// The step's variables, not this machine's: inside, the image's PATH and HOME apply.
		Env:     docker.Without(spec.Env, "PATH", "HOME", "TMPDIR", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME"),
		WorkDir: spec.Dir,
		User:    containerUser(spec.User),
		Binds:   []string{spec.Dir + ":" + spec.Dir},
		// The workspace is the host's: nothing in the container may become root, or
		// plant a setuid file there that a later step on the host would run as root.
		Unprivileged: true,
		Network:      net,
		Labels:       map[string]string{docker.LabelRun: spec.Run},
	}, out, b.grace())
	// A failed or timed-out step shows what its sidecars said; a cancelled one does not.
	var timeout *engine.TimeoutError
	cancelled := ctx.Err() != nil && !errors.As(context.Cause(ctx), &timeout)
	stop(!cancelled && (code != 0 || err != nil))
	return code, err
}

// image resolves a step's image: self is the run's own, anything else is found on this
// machine or in Drover's registry.
func (b *Backend) image(ctx context.Context, e *docker.Engine, ref, self string, out io.Writer) (string, error) {
	if ref == "self" {
		if self == "" {
			return "", errors.New("image: self is the image a build: step of this run made, and none has yet: give this step needs: on the build step")
		}
		ref = e.Registry().Ref(self) // pulled when the registry's copy is not this machine's
	}
	return e.Image(ctx, ref, out)
}

// sidecarTail is how many of a sidecar's last lines a failed step's log shows.
const sidecarTail = 50

// sidecars starts the step's services: on the run's network, each reachable by its
// name, and returns what removes them; stop(true) first copies the last lines each
// printed into the step's log, for a step that failed.
func (b *Backend) sidecars(ctx context.Context, e *docker.Engine, spec *engine.Spec, net string, out io.Writer) (stop func(failed bool), err error) {
	var ids, names []string
	stop = func(failed bool) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for i, id := range ids {
			if failed {
				// Stopped first: the engine has then copied all it printed into its log,
				// which it does a moment after the sidecar wrote it.
				e.Stop(cctx, id, 0)
				fmt.Fprintf(out, "service %s, its last %d lines:\n", names[i], sidecarTail)
				p := &prefixed{w: out, prefix: names[i] + "| "}
				if err := e.Logs(cctx, id, sidecarTail, p); err != nil {
					fmt.Fprintln(out, err)
				}
				if p.mid {
					fmt.Fprintln(out) // its last line had no end
				}
			}
			e.Remove(cctx, id)
		}
	}
	for _, sc := range spec.Step.Services {
		ref, err := b.image(ctx, e, sc.Image, spec.Self, out)
		if err != nil {
			return stop, fmt.Errorf("service %s: %w", sc.Name, err)
		}
		env := make([]string, 0, len(sc.Env))
		for _, v := range sc.Env {
			env = append(env, v.Name+"="+v.Value)
		}
		id, err := e.Create(ctx, docker.Container{Image: ref, Cmd: sc.Command, Env: env, Network: net,
			Aliases: []string{sc.Name}, Labels: map[string]string{docker.LabelRun: spec.Run}})
		if err != nil {
			return stop, fmt.Errorf("service %s: %w", sc.Name, err)
		}
		ids, names = append(ids, id), append(names, sc.Name)
		if err := e.Start(ctx, id); err != nil {
			return stop, fmt.Errorf("service %s: %w", sc.Name, err)
		}
		fmt.Fprintf(out, "service %s started (%s)\n", sc.Name, sc.Image)
	}
	return stop, nil
}

// prefixed writes each line with prefix before it.
type prefixed struct {
	w      io.Writer
	prefix string
	mid    bool // within a line
}

func (p *prefixed) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if !p.mid {
			if _, err := io.WriteString(p.w, p.prefix); err != nil {
				return n - len(b), err
			}
		}
		line, rest, nl := bytes.Cut(b, []byte("\n"))
		if nl {
			line = b[:len(line)+1]
		}
		if _, err := p.w.Write(line); err != nil {
			return n - len(b), err
		}
		p.mid = !nl
		b = rest
	}
	return n, nil
}

// network makes sure the run's network exists and returns its name.
func (b *Backend) network(ctx context.Context, e *docker.Engine, run string) (string, error) {
	name := "drover-" + run
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.networks[run] {
		return name, nil
	}
	if err := e.EnsureNetwork(ctx, name, map[string]string{docker.LabelRun: run}); err != nil {
		return "", err
	}
	if b.networks == nil {
		b.networks = map[string]bool{}
	}
	b.networks[run] = true
	return name, nil
}

// EndRun removes what is left of the run's containers and its network.
func (b *Backend) EndRun(ctx context.Context, run string) {
	b.mu.Lock()
	had := b.networks[run]
	delete(b.networks, run)
	b.mu.Unlock()
	if !had {
		return
	}
	e, err := b.Engine(ctx)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	e.RemoveLeftovers(cctx, map[string]string{docker.LabelRun: run})
}

func (b *Backend) grace() time.Duration {
	if b.Grace <= 0 {
		return 10 * time.Second
	}
	return b.Grace
}

// contextDir is the build context inside the workspace; it must not leave it.
func contextDir(workspace, ctxDir string) (string, error) {
	dir := filepath.Join(workspace, ctxDir)
	if rel, err := filepath.Rel(workspace, dir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("build.context %q leaves the workspace", ctxDir)
	}
	return dir, nil
}

// containerUser is the "uid:gid" a step's container runs as: the step's user, else the
// server's own, so that what it writes in the workspace belongs to whoever owns that.
func containerUser(u engine.User) string {
	if u.IsZero() {
		return fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	return fmt.Sprintf("%d:%d", u.UID, u.GID)
}
