package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// Container is what to create.
type Container struct {
	Name       string   // unique among the engine's containers; "" lets the engine choose
	Image      string   // a reference the engine has (see Engine.Image)
	Entrypoint []string // nil: the image's
	Cmd        []string // nil: the image's
	Env        []string // KEY=VALUE, over the image's
	WorkDir    string   // "": the image's
	User       string   // "uid:gid" or a name; "": the image's
	Binds      []string // host:container[:ro]
	Network    string   // a network to join; "": the default bridge
	Aliases    []string // names others on Network reach it by
	Labels     map[string]string
	// Publish, when not 0, is a TCP port in the container published on 127.0.0.1:HostPort
	// (only on loopback).
	Publish, HostPort int
	NanoCPUs          int64 // CPU limit in 1e-9 CPUs; 0: none
	Memory            int64 // memory limit in bytes; 0: none
	StopTimeout       time.Duration
	// Unprivileged drops every capability and forbids gaining privileges (setuid
	// binaries, file capabilities): for containers that share a host folder (Binds),
	// where a root process, or a setuid file it planted, would act on the host's files.
	Unprivileged bool
}

// Create creates c and returns its id. The container is not started.
func (e *Engine) Create(ctx context.Context, c Container) (string, error) {
	cfg := &container.Config{Image: c.Image, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env,
		WorkingDir: c.WorkDir, User: c.User, Labels: e.labels(c.Labels)}
	if c.StopTimeout > 0 {
		secs := int(c.StopTimeout.Round(time.Second) / time.Second)
		cfg.StopTimeout = &secs
	}
	host := &container.HostConfig{Binds: c.Binds,
		Resources: container.Resources{NanoCPUs: c.NanoCPUs, Memory: c.Memory}}
	if c.Unprivileged {
		host.CapDrop = []string{"ALL"}
		host.SecurityOpt = []string{"no-new-privileges:true"}
	}
	if c.Publish != 0 {
		port := nat.Port(strconv.Itoa(c.Publish) + "/tcp")
		cfg.ExposedPorts = nat.PortSet{port: {}}
		host.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(c.HostPort)}}}
	}
	var nets *network.NetworkingConfig
	if c.Network != "" {
		host.NetworkMode = container.NetworkMode(c.Network)
		nets = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			c.Network: {Aliases: c.Aliases}}}
	}
	created, err := e.api.ContainerCreate(ctx, cfg, host, nets, nil, c.Name)
	if err != nil && e.registry.Host != "" && strings.HasPrefix(c.Image, e.registry.Host+"/") &&
		client.IsErrNotFound(err) && strings.Contains(err.Error(), "No such image") {
		// An image of Drover's registry can leave the engine between Image and here (a
		// build untags earlier ones): fetch it again, once.
		if perr := e.Pull(ctx, c.Image, io.Discard); perr == nil {
			created, err = e.api.ContainerCreate(ctx, cfg, host, nets, nil, c.Name)
		}
	}
	if err != nil {
		return "", fmt.Errorf("create container of %s: %w", c.Image, err)
	}
	return created.ID, nil
}

// Start starts a created container.
func (e *Engine) Start(ctx context.Context, id string) error {
	if err := e.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", short(id), err)
	}
	return nil
}

// Attach streams the container's stdout and stderr, as the engine interleaves them, to
// out from now on. Call it before Start to miss nothing. The returned channel yields
// once the stream ended (the container exited, or ctx ended).
func (e *Engine) Attach(ctx context.Context, id string, out io.Writer) (<-chan error, error) {
	hj, err := e.api.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %w", short(id), err)
	}
	done := make(chan error, 1)
	go func() {
		defer hj.Close()
		_, err := stdcopy.StdCopy(out, out, hj.Reader)
		done <- err
	}()
	return done, nil
}

// Logs writes the last tail lines the container printed (stdout and stderr, as the
// engine interleaves them) to out.
func (e *Engine) Logs(ctx context.Context, id string, tail int, out io.Writer) error {
	rc, err := e.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail)})
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", short(id), err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(out, out, rc); err != nil {
		return fmt.Errorf("logs of container %s: %w", short(id), err)
	}
	return nil
}

// Wait returns a channel that yields the container's exit code once it has stopped
// after now (or an error when the engine could not say).
func (e *Engine) Wait(ctx context.Context, id string) <-chan Exit {
	ch := make(chan Exit, 1)
	resC, errC := e.api.ContainerWait(ctx, id, container.WaitConditionNextExit)
	go func() {
		select {
		case r := <-resC:
			exit := Exit{Code: int(r.StatusCode)}
			if r.Error != nil && r.Error.Message != "" {
				exit.Err = errors.New(r.Error.Message)
			}
			ch <- exit
		case err := <-errC:
			ch <- Exit{Code: -1, Err: fmt.Errorf("wait for container %s: %w", short(id), err)}
		}
	}()
	return ch
}

// Exit is how a container ended.
type Exit struct {
	Code int   // its main process's exit status; 128+N when killed by signal N
	Err  error // the engine could not say
}

// Stop sends the container's stop signal (SIGTERM), SIGKILL after grace, and returns
// once it has stopped. A container that is gone or stopped already is no error.
func (e *Engine) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if err := e.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("stop container %s: %w", short(id), err)
	}
	return nil
}

// Kill sends signal (e.g. "KILL") to the container's main process.
func (e *Engine) Kill(ctx context.Context, id, signal string) error {
	if err := e.api.ContainerKill(ctx, id, signal); err != nil {
		return fmt.Errorf("kill container %s: %w", short(id), err)
	}
	return nil
}

// Remove removes the container, killing it if it still runs. One that is gone already
// is no error.
func (e *Engine) Remove(ctx context.Context, id string) error {
	err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !client.IsErrNotFound(err) && !isRemovalInProgress(err) {
		return fmt.Errorf("remove container %s: %w", short(id), err)
	}
	return nil
}

// Inspect returns what the engine knows of a container.
func (e *Engine) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	c, err := e.api.ContainerInspect(ctx, id)
	if err != nil {
		return c, fmt.Errorf("inspect container %s: %w", short(id), err)
	}
	return c, nil
}

// Exists reports whether a container of that id or name exists.
func (e *Engine) Exists(ctx context.Context, id string) (bool, error) {
	_, err := e.api.ContainerInspect(ctx, id)
	switch {
	case client.IsErrNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect container %s: %w", short(id), err)
	}
	return true, nil
}

// Launched is a started container: Exited yields how it ended, Logs once its output
// stream has ended.
type Launched struct {
	ID     string
	Exited <-chan Exit
	Logs   <-chan error
}

// Launch creates c, streams its output to out, starts it and returns at once. Streaming
// and waiting go on after ctx ends (it only bounds the creating and starting); on an
// error nothing is left behind.
func (e *Engine) Launch(ctx context.Context, c Container, out io.Writer) (*Launched, error) {
	cleanup := context.WithoutCancel(ctx)
	id, err := e.Create(ctx, c)
	if err != nil {
		return nil, err
	}
	logs, err := e.Attach(cleanup, id, out)
	if err == nil {
		exited := e.Wait(cleanup, id)
		if err = e.Start(ctx, id); err == nil {
			return &Launched{ID: id, Exited: exited, Logs: logs}, nil
		}
	}
	e.Remove(cleanup, id)
	return nil, err
}

// Run creates, starts and waits for a container, writing its output to out, and removes
// it afterwards whatever happened. When ctx ends first the container is stopped (SIGTERM,
// SIGKILL after grace), removed, and Run returns context.Cause(ctx).
func (e *Engine) Run(ctx context.Context, c Container, out io.Writer, grace time.Duration) (int, error) {
	cleanup := context.WithoutCancel(ctx)
	l, err := e.Launch(ctx, c, out)
	if err != nil {
		if ctx.Err() != nil {
			return -1, context.Cause(ctx)
		}
		return -1, err
	}
	defer e.Remove(cleanup, l.ID)
	var exit Exit
	select {
	case exit = <-l.Exited:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(cleanup, grace+10*time.Second)
		e.Stop(sctx, l.ID, grace)
		cancel()
		select {
		case exit = <-l.Exited:
		case <-time.After(5 * time.Second):
		}
	}
	// The stream ends once the container has exited; a second is ample for the rest.
	select {
	case <-l.Logs:
	case <-time.After(time.Second):
	}
	if ctx.Err() != nil {
		return exit.Code, context.Cause(ctx)
	}
	return exit.Code, exit.Err
}

// removeContainers force-removes the containers args match.
func (e *Engine) removeContainers(ctx context.Context, args filters.Args) (int, error) {
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range list {
		errs = append(errs, e.Remove(ctx, c.ID))
	}
	return len(list), errors.Join(errs...)
}

func isRemovalInProgress(err error) bool {
	return err != nil && containsAny(err.Error(), "is already in progress", "No such container")
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
