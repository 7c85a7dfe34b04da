// Package docker is Drover's one door to the Docker Engine. It talks to the engine through
// the official Go client (never the docker CLI), says plainly when no engine is reachable
// and how to fix that, finds images on this machine or in Drover's built-in registry (so
// nothing needs Docker Hub), runs containers with their output streamed, builds and
// pushes images, and labels everything it creates with its owner so a restarted server
// can remove what a crash left behind.
//
// The step backend (backend/container) and the service runtime (runtime/container) are
// built on it.
package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
)

// Labels Drover puts on what it creates.
const (
	LabelOwner = "dev.drover.owner" // who created it: a server's data folder, or "drover run"
	LabelRun   = "dev.drover.run"   // the run a step container or network belongs to
)

// Registry is Drover's built-in registry as the engine reaches it.
type Registry struct {
	// Host is host:port on loopback, e.g. 127.0.0.1:8080. The engine treats 127.0.0.0/8
	// as an insecure (plain HTTP) registry by default. "" means there is none.
	Host string
	// Token is a Drover token the engine signs in with, as the password.
	Token string
}

// Ref turns an image a build: step recorded (engine.StepResult.Image) into a reference
// the engine pulls: REPO@DIGEST lives in this registry, an image id ("sha256:...") on
// the machine.
func (r Registry) Ref(image string) string {
	if strings.HasPrefix(image, "sha256:") || r.Host == "" {
		return image
	}
	return r.Host + "/" + image
}

// Engine is a connected Docker Engine. Its methods are safe for concurrent use.
type Engine struct {
	api      *client.Client
	registry Registry
	owner    string
	netMu    sync.Mutex // held while a network is made: the engine allows two of one name
}

// ErrNoEngine is wrapped by Connect's error when no engine answers.
var ErrNoEngine = errors.New("no Docker Engine reachable")

// Connect reaches the engine DOCKER_HOST names (default the local socket), agrees on an
// API version with it and checks that it answers. Owner labels everything the Engine
// creates, so RemoveLeftovers finds it again.
func Connect(ctx context.Context, owner string, reg Registry) (*Engine, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoEngine, err)
	}
	if _, err := api.Ping(ctx); err != nil {
		api.Close()
		return nil, fmt.Errorf("%w at %s: %v\n  start it (sudo systemctl start docker) or point DOCKER_HOST at one; steps with image:, services: or build:, and the docker runtime, need it", ErrNoEngine, api.DaemonHost(), err)
	}
	api.NegotiateAPIVersion(ctx)
	return &Engine{api: api, registry: reg, owner: owner}, nil
}

// Lazy returns a function that connects on first use and then hands out the same
// Engine. A failed attempt is not remembered: a later call tries again, so starting the
// engine after Drover works.
func Lazy(owner string, reg Registry) func(context.Context) (*Engine, error) {
	var (
		mu sync.Mutex
		e  *Engine
	)
	return func(ctx context.Context) (*Engine, error) {
		mu.Lock()
		defer mu.Unlock()
		if e != nil {
			return e, nil
		}
		got, err := Connect(ctx, owner, reg)
		if err != nil {
			return nil, err
		}
		e = got
		return e, nil
	}
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.api.Close() }

// Registry is the built-in registry the engine pulls from and pushes to.
func (e *Engine) Registry() Registry { return e.registry }

// labels are the owner label plus extra.
func (e *Engine) labels(extra map[string]string) map[string]string {
	l := map[string]string{LabelOwner: e.owner}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// auth is the encoded credentials for ref's registry when it is the built-in one.
func (e *Engine) auth(ref string) string {
	if e.registry.Host == "" || !strings.HasPrefix(ref, e.registry.Host+"/") {
		return ""
	}
	buf, _ := json.Marshal(registry.AuthConfig{Username: "drover", Password: e.registry.Token, ServerAddress: e.registry.Host})
	return base64.URLEncoding.EncodeToString(buf)
}

// EnsureNetwork creates a bridge network of that name unless it exists. Calls are
// serialised, so concurrent ones make one network.
func (e *Engine) EnsureNetwork(ctx context.Context, name string, labels map[string]string) error {
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if ok, err := e.HasNetwork(ctx, name); err != nil || ok {
		return err
	}
	_, err := e.api.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: e.labels(labels)})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// HasNetwork reports whether a network of that name exists.
func (e *Engine) HasNetwork(ctx context.Context, name string) (bool, error) {
	nets, err := e.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return false, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets {
		if n.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// RemoveNetwork removes a network; one that is gone already is no error.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	if err := e.api.NetworkRemove(ctx, name); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}

// RemoveLeftovers removes the containers and networks this Engine's owner created that
// carry every label in match (nil: all of them; a label with the value "": whatever its
// value), and returns how many containers it removed. A restarted server calls it for
// what a crash left behind.
func (e *Engine) RemoveLeftovers(ctx context.Context, match map[string]string) (int, error) {
	args := filters.NewArgs(filters.Arg("label", LabelOwner+"="+e.owner))
	for k, v := range match {
		if v == "" {
			args.Add("label", k)
			continue
		}
		args.Add("label", k+"="+v)
	}
	n, err := e.removeContainers(ctx, args)
	if err != nil {
		return n, err
	}
	nets, err := e.api.NetworkList(ctx, network.ListOptions{Filters: args})
	if err != nil {
		return n, fmt.Errorf("list networks: %w", err)
	}
	var errs []error
	for _, nw := range nets {
		errs = append(errs, e.RemoveNetwork(ctx, nw.ID))
	}
	return n, errors.Join(errs...)
}

// Owner is a label value for a server whose data folder is dir.
func Owner(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// Without is env (KEY=VALUE) without the given keys: what describes this machine rather
// than a container (PATH, HOME: inside, the image's own apply).
func Without(env []string, keys ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(keys, k) {
			out = append(out, kv)
		}
	}
	return out
}
