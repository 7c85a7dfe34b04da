// Package runtime is the contract between deployments and what runs their instances: a
// Runtime starts an instance of a release from a Spec, and an Instance is stopped,
// watched and asked for its last output through the same few methods whether it is a
// local process group (package runtime/process) or a container (runtime/container).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/drover-cd/drover/mask"
)

// DefaultStopTimeout is the time between SIGTERM and SIGKILL when Spec.StopTimeout is 0.
const DefaultStopTimeout = 10 * time.Second

// ErrStopped is wrapped by Instance.Err when the instance exited because it was stopped
// (Stop was called or the context given to Start ended), not by itself.
var ErrStopped = errors.New("stopped")

// Spec describes one instance to start.
type Spec struct {
	// Name identifies the instance, e.g. "catalog.staging.3f2a.1". Required; unique among
	// running instances, and safe for file and container names (no '/').
	Name string
	// Dir is the working directory: the unpacked release. Required.
	Dir string
	// Command is run with `sh -c`. Required.
	Command string
	// Env is the instance's full environment as KEY=VALUE; nothing is inherited. The
	// runtime adds PORT, which wins over a PORT in Env.
	Env []string
	// Port is where the instance must listen, on 127.0.0.1. Default 0: the runtime picks
	// a free loopback port.
	Port int
	// StopTimeout is how long Stop waits between SIGTERM and SIGKILL. Default 0:
	// DefaultStopTimeout.
	StopTimeout time.Duration
	// LogFile receives stdout and stderr, appended; it is created with its folders.
	// Default "": the output is kept only for Instance.Tail.
	LogFile string
	// UID and GID, when UID is not 0, are who the instance runs as (with no other
	// groups), so that it cannot touch the server or other environments' instances.
	// Default 0: the server's own user.
	UID, GID int
	// Masker hides the secrets the instance was given in its output, before the output
	// reaches LogFile or Tail. Default nil: nothing is hidden.
	Masker *mask.Masker
	// Launcher, when set, is what `sh -c COMMAND` is started through: a sandbox such as
	// `drover sandbox exec --ro RELEASE ... --`. Process runtimes only.
	Launcher []string

	// Labels say whose the instance is (service, environment, deployment, generation).
	// A runtime whose instances outlive the server (an Adopter) records them with the
	// instance, so a restarted server knows what it adopts. Keys and values are short
	// printable text.
	Labels map[string]string

	// Container runtimes only (runtime/container).
	// Image runs the instance as a container of this image; Dir is then unused and
	// Command, when set, replaces the image's command (run with sh -c).
	Image string
	// Aliases are the names other instances reach this one by.
	Aliases []string
	// CPUs (cores, e.g. 0.5) and Memory (bytes) limit the container; 0 means no limit.
	CPUs   float64
	Memory int64
}

// Validate reports what is missing or malformed in s.
func (s Spec) Validate() error {
	switch {
	case s.Name == "":
		return errors.New("instance spec: no name")
	case strings.ContainsAny(s.Name, "/\x00") || s.Name == "." || s.Name == "..":
		return fmt.Errorf("instance spec: name %q is not safe for a file name", s.Name)
	case s.Dir == "" && s.Image == "":
		return fmt.Errorf("instance spec %s: no working directory", s.Name)
	case strings.TrimSpace(s.Command) == "" && s.Image == "":
		return fmt.Errorf("instance spec %s: no command", s.Name)
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("instance spec %s: port %d out of range", s.Name, s.Port)
	case s.StopTimeout < 0:
		return fmt.Errorf("instance spec %s: negative stop timeout %s", s.Name, s.StopTimeout)
	}
	return nil
}

// Timeout is s.StopTimeout, or DefaultStopTimeout when it is 0.
func (s Spec) Timeout() time.Duration {
	if s.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return s.StopTimeout
}

// Runtime starts instances.
//
// Start returns once the instance has been started, not once it serves: health is the
// caller's to check (package health). The instance lives until it exits, Stop is
// called, or ctx ends, whichever comes first; when ctx ends the instance is stopped as
// by Stop, in the background. So pass the context the instance should live on (the
// server's), not a request's. An error means nothing is left running.
//
// Start is safe for concurrent use.
type Runtime interface {
	Start(ctx context.Context, spec Spec) (Instance, error)
}

// Adopter is a Runtime whose instances outlive the server that started them: the data
// plane does not depend on the control plane. For an Adopter, Start's ctx bounds only
// the start itself; the instance runs until it exits or Stop is called, also after the
// server is gone.
//
// Adopt is called once when a server starts: it returns the instances a previous server
// started that still run, with the Labels they were started with, and forgets the
// records of those that are gone. What the caller does not want of them it stops.
type Adopter interface {
	Runtime
	Adopt(ctx context.Context) ([]Adopted, error)
}

// Adopted is an instance a previous server started.
type Adopted struct {
	Instance Instance
	Labels   map[string]string
	Started  time.Time // when the instance started
}

// Instance is one started instance. All its methods are safe for concurrent use.
//
// Its life: running → exited. Done is closed once it has exited and everything it
// started is gone, and its output has been read (so Tail then holds all of it). It
// never starts again: a new instance takes its place.
type Instance interface {
	// Name is Spec.Name.
	Name() string
	// Addr is where the instance listens: "127.0.0.1:PORT".
	Addr() string
	// Pid is the process id of the instance's leader, 0 if it is not a local process.
	Pid() int
	// Done is closed when the instance has exited.
	Done() <-chan struct{}
	// Err is nil while the instance runs; after Done it is never nil and says why it
	// exited: "exit status 3", "signal: killed", or an error wrapping ErrStopped when it
	// was stopped.
	Err() error
	// Stop sends SIGTERM to the instance and everything it started, SIGKILL once
	// Spec.StopTimeout has passed or ctx ends, and returns once it has exited. It is
	// idempotent: later and concurrent calls wait for the same exit (each may still
	// hurry it with its own ctx), and a call after the instance exited returns nil at
	// once. It returns an error only when the instance could not be signalled.
	Stop(ctx context.Context) error
	// Tail returns up to the last n lines of the instance's output (stdout and stderr
	// together), oldest first, for error messages. A runtime keeps at least 100 lines.
	Tail(n int) []string
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it listens on
// port 0 and closes the listener. Another process may take the port before the instance
// binds it; the instance then fails to start ("address already in use") and starting
// a new one is the caller's to decide.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}
