package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-connections/nat"

	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/runtime"
)

// logsTimeout bounds how long Tail waits for the engine's logs of an adopted instance.
const logsTimeout = 5 * time.Second

// Adopt returns the instances whose containers run, found by the labels this Engine's
// owner put on them (LabelInstance), with their Labels; see runtime.Adopter. Instance
// containers that exited while no server watched are removed. An adopted instance's
// Tail reads the engine's logs, masked by Runtime.Masker; its output no longer goes to
// the Spec.LogFile it was started with.
func (r *Runtime) Adopt(ctx context.Context) ([]runtime.Adopted, error) {
	e, err := r.Engine(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := e.Containers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("adopt instances: %w", err)
	}
	var adopted []runtime.Adopted
	var errs []error
	for _, id := range ids {
		a, ok, err := r.adoptOne(ctx, e, id)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			adopted = append(adopted, a)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return adopted, fmt.Errorf("adopt instances: %w", err)
	}
	return adopted, nil
}

// adoptOne adopts the container id when it is a running instance.
func (r *Runtime) adoptOne(ctx context.Context, e *docker.Engine, id string) (runtime.Adopted, bool, error) {
	c, err := e.Inspect(ctx, id)
	if err != nil || c.Config == nil || c.State == nil {
		return runtime.Adopted{}, false, err
	}
	name, ok := c.Config.Labels[LabelInstance]
	if !ok {
		return runtime.Adopted{}, false, nil // a step's container, not an instance's
	}
	if !c.State.Running {
		return runtime.Adopted{}, false, e.Remove(ctx, id)
	}
	addr := ""
	if c.HostConfig != nil {
		for _, b := range c.HostConfig.PortBindings[nat.Port(strconv.Itoa(ContainerPort)+"/tcp")] {
			addr = net.JoinHostPort(b.HostIP, b.HostPort)
		}
	}
	labels := map[string]string{}
	for k, v := range c.Config.Labels {
		if key, ok := strings.CutPrefix(k, LabelPrefix); ok {
			labels[key] = v
		}
	}
	grace := runtime.DefaultStopTimeout
	if c.Config.StopTimeout != nil {
		grace = time.Duration(*c.Config.StopTimeout) * time.Second
	}
	i := &instance{e: e, id: c.ID, name: name, addr: addr, grace: grace, done: make(chan struct{})}
	if r.Masker != nil {
		i.masker = r.Masker(labels)
	}
	started, _ := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	go i.watch(r.exited(e, c.ID), nil, func() {}, nil)
	return runtime.Adopted{Instance: i, Labels: labels, Started: started}, true, nil
}

// exited yields how the running container id ends. The engine's wait counts only exits
// after it was asked, so the state is checked once more after asking: the container
// may have exited in between.
func (r *Runtime) exited(e *docker.Engine, id string) <-chan docker.Exit {
	ctx := context.Background()
	waited := e.Wait(ctx, id)
	c, err := e.Inspect(ctx, id)
	if err != nil || c.State == nil || c.State.Running {
		return waited
	}
	ch := make(chan docker.Exit, 1)
	ch <- docker.Exit{Code: c.State.ExitCode}
	return ch
}

// logs reads the last n lines of the container's output from the engine, masked.
func (i *instance) logs(n int) []string {
	if n <= 0 {
		return nil
	}
	ring := runtime.NewRing(n)
	ctx, cancel := context.WithTimeout(context.Background(), logsTimeout)
	defer cancel()
	if i.masker.Empty() {
		_ = i.e.Logs(ctx, i.id, n, ring)
		return ring.Tail(n)
	}
	mw := i.masker.Writer(ring)
	_ = i.e.Logs(ctx, i.id, n, mw)
	_ = mw.Flush()
	return ring.Tail(n)
}
