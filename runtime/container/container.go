// Package container runs service instances as Docker containers: each instance is a
// container of the release's image that listens on ContainerPort inside and is
// published on a loopback port only, where health checks and the proxy reach it. All
// instances join one network, where each is reachable by its aliases (SERVICE.ENV), so
// service discovery works between containers, which cannot reach the host's loopback.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
)

// ContainerPort is the port every instance listens on inside its container: PORT says
// so, and HOST=0.0.0.0 says on which address (the container's own; on the host the port
// is published on 127.0.0.1 only).
const ContainerPort = 8080

// LabelInstance carries the instance's name on its container.
const LabelInstance = "dev.drover.instance"

// LabelPrefix starts the container label of each of Spec.Labels: key K is the label
// LabelPrefix+K.
const LabelPrefix = "dev.drover.label."

var _ runtime.Adopter = (*Runtime)(nil)

// Runtime starts instances on a Docker Engine.
type Runtime struct {
	// Engine connects to the engine (docker.Lazy).
	Engine func(context.Context) (*docker.Engine, error)
	// Network is the network every instance joins. Required.
	Network string
	// Masker, when set, gives the masker of an adopted instance's output from its
	// Labels: Tail reads an adopted instance's output from the engine's logs, where it
	// is not masked. Default nil: Tail of adopted instances is not masked.
	Masker func(labels map[string]string) *mask.Masker
}

// containerLabels are the labels of the container of spec.
func containerLabels(spec runtime.Spec) map[string]string {
	l := map[string]string{LabelInstance: spec.Name}
	for k, v := range spec.Labels {
		l[LabelPrefix+k] = v
	}
	return l
}

// Start pulls the image if needed, creates and starts the container; see
// runtime.Runtime and runtime.Adopter: ctx bounds only the start, the container runs
// until it exits or is stopped, also after the server is gone.
func (r *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Image == "" {
		return nil, fmt.Errorf("instance %s: the docker runtime needs an image (service.image)", spec.Name)
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return nil, err
	}
	ref, err := e.Image(ctx, spec.Image, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", spec.Name, err)
	}
	if err := e.EnsureNetwork(ctx, r.Network, nil); err != nil {
		return nil, err
	}
	port := spec.Port
	if port == 0 {
		if port, err = runtime.FreePort(); err != nil {
			return nil, err
		}
	}
	c := docker.Container{
		Name: "drover-" + spec.Name, Image: ref, Env: append(docker.Without(spec.Env, "PATH", "HOME", "TMPDIR", "PORT", "HOST"), "HOST=0.0.0.0", "PORT="+strconv.Itoa(ContainerPort)),
		Network: r.Network, Aliases: spec.Aliases, Labels: containerLabels(spec),
		Publish: ContainerPort, HostPort: port, StopTimeout: spec.Timeout(),
		NanoCPUs: int64(spec.CPUs * 1e9), Memory: spec.Memory,
	}
	if spec.UID != 0 {
		c.User = fmt.Sprintf("%d:%d", spec.UID, spec.GID)
	}
	if strings.TrimSpace(spec.Command) != "" {
		c.Entrypoint = []string{"/bin/sh", "-c", spec.Command}
	}
	i := &instance{e: e, name: spec.Name, addr: "127.0.0.1:" + strconv.Itoa(port), grace: spec.Timeout(),
		out: runtime.NewRing(200), done: make(chan struct{})}
	var w io.Writer = i.out
	var logFile *os.File
	if spec.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(spec.LogFile), 0o700); err == nil {
			if logFile, err = os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
				w = io.MultiWriter(i.out, logFile)
			}
		}
	}
	flush := func() {}
	if !spec.Masker.Empty() {
		mw := spec.Masker.Writer(w)
		w, flush = mw, func() { _ = mw.Flush() }
	}
	l, err := e.Launch(ctx, c, w)
	if err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("instance %s: %w", spec.Name, err)
	}
	i.id = l.ID
	go i.watch(l.Exited, l.Logs, flush, logFile)
	return i, nil
}

// instance is one container.
type instance struct {
	e     *docker.Engine
	id    string
	name  string
	addr  string
	grace time.Duration
	out   *runtime.Ring // nil for an adopted instance: see logs
	done  chan struct{}
	// masker hides secrets in the engine's logs, which Tail reads for an adopted
	// instance; nil: none.
	masker *mask.Masker

	mu      sync.Mutex
	last    []string // an adopted instance's last output, kept once it exited
	err     error
	stopped bool
}

func (i *instance) Name() string          { return i.name }
func (i *instance) Addr() string          { return i.addr }
func (i *instance) Pid() int              { return 0 }
func (i *instance) Done() <-chan struct{} { return i.done }

// Tail is the output kept since Start, or, for an adopted instance, the engine's logs.
func (i *instance) Tail(n int) []string {
	if i.out != nil {
		return i.out.Tail(n)
	}
	i.mu.Lock()
	last := i.last
	i.mu.Unlock()
	if last != nil {
		return last[min(len(last), max(0, len(last)-n)):]
	}
	return i.logs(n)
}

// ID is the container's id.
func (i *instance) ID() string { return i.id }

func (i *instance) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// watch waits for the container to exit, records why, removes it and closes done.
func (i *instance) watch(exited <-chan docker.Exit, logs <-chan error, flush func(), logFile *os.File) {
	exit := <-exited
	if logs != nil {
		select {
		case <-logs:
			flush() // what the masker held back; the log stream has ended
		case <-time.After(time.Second):
		}
	}
	if i.out == nil { // adopted: keep the last output before the container goes
		last := i.logs(200)
		i.mu.Lock()
		i.last = append([]string{}, last...)
		i.mu.Unlock()
	}
	if logFile != nil {
		logFile.Close()
	}
	i.mu.Lock()
	switch {
	case i.stopped:
		i.err = fmt.Errorf("exit status %d: %w", exit.Code, runtime.ErrStopped)
	case exit.Err != nil:
		i.err = exit.Err
	case exit.Code > 128:
		i.err = fmt.Errorf("signal %d (exit status %d)", exit.Code-128, exit.Code)
	default:
		i.err = fmt.Errorf("exit status %d", exit.Code)
	}
	i.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	i.e.Remove(ctx, i.id)
	close(i.done)
}

// Stop stops the container (SIGTERM, SIGKILL after the grace) and waits until it is
// gone; see runtime.Instance.
func (i *instance) Stop(ctx context.Context) error {
	select {
	case <-i.done:
		return nil
	default:
	}
	i.mu.Lock()
	i.stopped = true
	i.mu.Unlock()
	grace := i.grace
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < grace {
		grace = max(0, time.Until(dl))
	}
	if err := i.e.Stop(ctx, i.id, grace); err != nil && ctx.Err() == nil {
		// The engine would not stop it: removing kills it, or says why not.
		if rerr := i.e.Remove(context.WithoutCancel(ctx), i.id); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	select {
	case <-i.done:
	case <-ctx.Done():
		i.e.Remove(context.WithoutCancel(ctx), i.id)
		<-i.done
	}
	return nil
}
