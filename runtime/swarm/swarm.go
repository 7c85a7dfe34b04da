// Package swarm runs release generations on a Docker Swarm cluster: each generation is
// one Swarm service of the release's image, its port published in host mode on
// whichever port Swarm picks per task, so that several tasks and two generations fit
// on one node and nothing depends on the ingress routing mesh. The package creates,
// resizes, updates and removes those services and lists their tasks with the address
// (node address and published port) each serves on; deciding what is healthy and
// what takes the traffic is package deploy's.
//
// A Kubernetes runtime would map the same parts to a Deployment per generation (a
// Service per generation's pods, or one Service whose selector is switched between
// generations for blue-green), Deployment.spec.replicas for Scale, a pod's status.podIP
// and container port for a task's address, and an imagePullSecret holding the pull
// credential for RegistryAuth.
package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// Labels Drover puts on the Swarm services it creates.
const (
	// LabelManaged marks a service as one of Drover's generations.
	LabelManaged = "dev.drover.generation"
	// LabelSpec is a digest of the generation's spec, without its replica count and
	// pull credential: Apply leaves a service whose spec did not change running as it
	// is, so a restarted server does not restart its tasks.
	LabelSpec = "dev.drover.spec"
	// LabelCredential carries Generation.CredentialID.
	LabelCredential = "dev.drover.credential"
)

// Cluster is a Swarm cluster reached through one of its managers.
type Cluster struct {
	cli  *client.Client
	host string
}

// Connect reaches the Swarm manager at host (unix:///var/run/docker.sock or
// tcp://HOST:2376). tlsDir, when set, holds ca.pem, cert.pem and key.pem, as for
// docker --tlsverify. It fails, saying what to do, when the engine does not answer or
// is not a Swarm manager.
func Connect(ctx context.Context, host, tlsDir string) (*Cluster, error) {
	opts := []client.Opt{client.WithHost(host), client.WithAPIVersionNegotiation()}
	if tlsDir != "" {
		opts = append(opts, client.WithTLSClientConfig(filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "cert.pem"),
			filepath.Join(tlsDir, "key.pem")))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("swarm manager %s: %w", host, err)
	}
	info, err := cli.Info(ctx)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("swarm manager %s does not answer (%w): check swarm.host and swarm.tls in environments.yml", host, err)
	}
	if !info.Swarm.ControlAvailable {
		cli.Close()
		return nil, fmt.Errorf("the Docker Engine at %s is not a Swarm manager (swarm state %q): point swarm.host at a manager, or run docker swarm init there",
			host, info.Swarm.LocalNodeState)
	}
	return &Cluster{cli: cli, host: host}, nil
}

// Host is the manager's address, as given to Connect.
func (c *Cluster) Host() string { return c.host }

// Close closes the connection to the manager.
func (c *Cluster) Close() error { return c.cli.Close() }

// Generation is one release generation: a Swarm service.
type Generation struct {
	// Name is the Swarm service's name, unique in the cluster. Required.
	Name string
	// Image is the release's image, by digest (HOST:PORT/REPO@sha256:...). Required.
	Image string
	// Command, when set, replaces the image's command, run with sh -c.
	Command string
	// Env is the tasks' environment as KEY=VALUE.
	Env []string
	// Port is where each task listens inside its container; Swarm publishes it on a
	// port of its choosing on the task's node. Required.
	Port int
	// Replicas is how many tasks run.
	Replicas int
	// Labels are the service's labels (LabelManaged and LabelSpec are added).
	Labels map[string]string
	// Constraints and Spread place the tasks: Swarm constraints such as
	// node.labels.zone==a, and a node label to spread them evenly over, such as
	// node.labels.zone.
	Constraints []string
	Spread      string
	// CPUs (cores) and Memory (bytes) limit each task; 0 means no limit.
	CPUs   float64
	Memory int64
	// StopTimeout is the time between SIGTERM and SIGKILL when a task stops.
	StopTimeout time.Duration
	// RegistryAuth is the credential nodes pull Image with, in the X-Registry-Auth
	// encoding (RegistryAuth makes one). Swarm keeps it with the service and uses it
	// again whenever it schedules a task.
	RegistryAuth string
	// CredentialID names RegistryAuth's credential (a token's ID) for whoever revokes it
	// once the generation is gone; Service.CredentialID gives it back.
	CredentialID string
}

// RegistryAuth encodes a registry credential for Generation.RegistryAuth.
func RegistryAuth(server, user, password string) string {
	b, _ := json.Marshal(registry.AuthConfig{Username: user, Password: password, ServerAddress: server})
	return base64.URLEncoding.EncodeToString(b)
}

// Fingerprint is a digest of what of g a task runs: everything but Replicas and
// RegistryAuth. The service carries it as LabelSpec, and so does each task.
func (g Generation) Fingerprint() string {
	h := sha256.New()
	x := g
	x.Replicas, x.RegistryAuth, x.CredentialID, x.Labels = 0, "", "", nil
	json.NewEncoder(h).Encode(x)
	keys := slices.Sorted(maps.Keys(g.Labels))
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, g.Labels[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// spec is g as a Swarm service spec; updates go start-first, one task at a time.
func (g Generation) spec() swarm.ServiceSpec {
	replicas := uint64(g.Replicas)
	labels := map[string]string{LabelManaged: "true", LabelSpec: g.Fingerprint()}
	maps.Copy(labels, g.Labels)
	if g.CredentialID != "" {
		labels[LabelCredential] = g.CredentialID
	}
	cs := &swarm.ContainerSpec{Image: g.Image, Env: slices.Clone(g.Env), Labels: map[string]string{LabelSpec: labels[LabelSpec]}}
	if g.Command != "" {
		cs.Command = []string{"sh", "-c", g.Command}
	}
	if g.StopTimeout > 0 {
		d := g.StopTimeout
		cs.StopGracePeriod = &d
	}
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: g.Name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: cs,
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny},
			Placement:     &swarm.Placement{Constraints: slices.Clone(g.Constraints)},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP,
			TargetPort: uint32(g.Port), PublishMode: swarm.PortConfigPublishModeHost}}},
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst,
			FailureAction: swarm.UpdateFailureActionPause, Monitor: 5 * time.Second},
	}
	if g.Spread != "" {
		spec.TaskTemplate.Placement.Preferences = []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: g.Spread}}}
	}
	if g.CPUs > 0 || g.Memory > 0 {
		spec.TaskTemplate.Resources = &swarm.ResourceRequirements{Limits: &swarm.Limit{
			NanoCPUs: int64(g.CPUs * 1e9), MemoryBytes: g.Memory}}
	}
	return spec
}

// Service is a generation as the cluster has it.
type Service struct {
	ID, Name string
	Labels   map[string]string
	Image    string
	Replicas int
	// Updating is true while a rolling update of the service is under way; UpdateError
	// says why Swarm paused or rolled one back.
	Updating    bool
	UpdateError string
	// Spec is LabelSpec: what its tasks run, replicas and credential aside.
	Spec string
	// CredentialID is the Generation.CredentialID it was last applied with.
	CredentialID string
}

func serviceOf(s swarm.Service) Service {
	out := Service{ID: s.ID, Name: s.Spec.Name, Labels: s.Spec.Labels, Spec: s.Spec.Labels[LabelSpec],
		CredentialID: s.Spec.Labels[LabelCredential]}
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		out.Image = cs.Image
	}
	if r := s.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		out.Replicas = int(*r.Replicas)
	}
	if u := s.UpdateStatus; u != nil {
		out.Updating = u.State == swarm.UpdateStateUpdating || u.State == swarm.UpdateStateRollbackStarted
		if u.State == swarm.UpdateStatePaused || u.State == swarm.UpdateStateRollbackCompleted ||
			u.State == swarm.UpdateStateRollbackPaused {
			out.UpdateError = fmt.Sprintf("%s: %s", u.State, u.Message)
		}
	}
	return out
}

// Services lists Drover's generations that carry every one of labels.
func (c *Cluster) Services(ctx context.Context, labels map[string]string) ([]Service, error) {
	f := filters.NewArgs(filters.Arg("label", LabelManaged))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	list, err := c.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list the Swarm services: %w", err)
	}
	out := make([]Service, 0, len(list))
	for _, s := range list {
		out = append(out, serviceOf(s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Inspect returns the generation called name; an error wrapping ErrNotFound when there
// is none.
func (c *Cluster) Inspect(ctx context.Context, name string) (Service, error) {
	s, _, err := c.cli.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if errdefs.IsNotFound(err) {
		return Service{}, fmt.Errorf("swarm service %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Service{}, fmt.Errorf("inspect swarm service %s: %w", name, err)
	}
	return serviceOf(s), nil
}

// ErrNotFound is wrapped by Inspect when no such service exists.
var ErrNotFound = errors.New("not found")

// Applied says what Apply did.
type Applied int

const (
	Created Applied = iota // a new service
	Updated                // the running tasks are replaced, start-first, one at a time
	Resized                // only the replica count changed (or nothing did)
)

// Apply creates the generation, or brings the service of that name to it: when what its
// tasks run changed it is updated (Swarm replaces the tasks start-first, one at a
// time, and pauses when a new one fails); when only the replica count changed, only
// that is set, and the running tasks stay. The registry credential is kept from the
// existing service unless the tasks change.
func (c *Cluster) Apply(ctx context.Context, g Generation) (Applied, error) {
	if g.Name == "" || g.Image == "" || g.Port <= 0 {
		return 0, fmt.Errorf("swarm generation %q: a name, an image and a port are required", g.Name)
	}
	spec := g.spec()
	cur, _, err := c.cli.ServiceInspectWithRaw(ctx, g.Name, swarm.ServiceInspectOptions{})
	if errdefs.IsNotFound(err) {
		if _, err := c.cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{EncodedRegistryAuth: g.RegistryAuth}); err != nil {
			return 0, fmt.Errorf("create swarm service %s: %w", g.Name, err)
		}
		return Created, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inspect swarm service %s: %w", g.Name, err)
	}
	if cur.Spec.Labels[LabelSpec] == spec.Labels[LabelSpec] {
		next := cur.Spec
		next.Mode = spec.Mode
		if _, err := c.cli.ServiceUpdate(ctx, cur.ID, cur.Version, next, swarm.ServiceUpdateOptions{}); err != nil {
			return 0, fmt.Errorf("resize swarm service %s: %w", g.Name, err)
		}
		return Resized, nil
	}
	if _, err := c.cli.ServiceUpdate(ctx, cur.ID, cur.Version, spec, swarm.ServiceUpdateOptions{EncodedRegistryAuth: g.RegistryAuth}); err != nil {
		return 0, fmt.Errorf("update swarm service %s: %w", g.Name, err)
	}
	return Updated, nil
}

// Scale sets the replica count of the service called name, leaving its tasks' spec as
// it is.
func (c *Cluster) Scale(ctx context.Context, name string, replicas int) error {
	cur, _, err := c.cli.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("scale swarm service %s: %w", name, err)
	}
	n := uint64(replicas)
	next := cur.Spec
	next.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}}
	if _, err := c.cli.ServiceUpdate(ctx, cur.ID, cur.Version, next, swarm.ServiceUpdateOptions{}); err != nil {
		return fmt.Errorf("scale swarm service %s to %d: %w", name, replicas, err)
	}
	return nil
}

// Rollback asks Swarm to put the service back on the spec it had before its last
// update.
func (c *Cluster) Rollback(ctx context.Context, name string) error {
	cur, _, err := c.cli.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("roll back swarm service %s: %w", name, err)
	}
	if cur.PreviousSpec == nil {
		return nil
	}
	if _, err := c.cli.ServiceUpdate(ctx, cur.ID, cur.Version, cur.Spec, swarm.ServiceUpdateOptions{Rollback: "previous"}); err != nil {
		return fmt.Errorf("roll back swarm service %s: %w", name, err)
	}
	return nil
}

// Remove removes the service called name and its tasks; a service already gone is not
// an error.
func (c *Cluster) Remove(ctx context.Context, name string) error {
	if err := c.cli.ServiceRemove(ctx, name); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove swarm service %s: %w", name, err)
	}
	return nil
}

// Task is one task of a generation.
type Task struct {
	ID      string
	Slot    int
	Node    string // the node's name (its hostname unless named)
	NodeID  string
	Image   string
	State   string // Swarm's: pending, preparing, running, failed, shutdown, ...
	Desired string // the state Swarm wants it in: running, or shutdown once it is replaced
	Err     string // why it failed or was rejected
	// Addr is NODE_ADDRESS:PUBLISHED_PORT once the task runs and its port is
	// published; "" before.
	Addr    string
	Created time.Time // when the task was created
	Spec    string    // the generation spec (LabelSpec) the task runs
}

// Tasks lists the tasks of the service called name that Swarm has not given up on:
// those it wants running, and those it is shutting down that have not stopped yet.
// The nodes' addresses come from the node list.
func (c *Cluster) Tasks(ctx context.Context, name string) ([]Task, error) {
	list, err := c.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", name))})
	if err != nil {
		return nil, fmt.Errorf("list the tasks of swarm service %s: %w", name, err)
	}
	nodes, err := c.nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []Task
	for _, t := range list {
		state := string(t.Status.State)
		if t.DesiredState != swarm.TaskStateRunning && !(t.DesiredState == swarm.TaskStateShutdown && state == string(swarm.TaskStateRunning)) {
			continue // long done
		}
		n := nodes[t.NodeID]
		task := Task{ID: t.ID, Slot: t.Slot, NodeID: t.NodeID, Node: n.name, State: state, Desired: string(t.DesiredState),
			Err: t.Status.Err, Created: t.CreatedAt}
		if cs := t.Spec.ContainerSpec; cs != nil {
			task.Image, task.Spec = cs.Image, cs.Labels[LabelSpec]
		}
		if t.Status.PortStatus.Ports != nil && n.addr != "" {
			for _, p := range t.Status.PortStatus.Ports {
				if p.PublishMode == swarm.PortConfigPublishModeHost && p.PublishedPort != 0 {
					task.Addr = net.JoinHostPort(n.addr, strconv.Itoa(int(p.PublishedPort)))
					break
				}
			}
		}
		out = append(out, task)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Slot != out[j].Slot {
			return out[i].Slot < out[j].Slot
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out, nil
}

type nodeInfo struct{ name, addr string }

// NodeReady reports whether the node with this ID is up as far as the managers know.
func (c *Cluster) NodeReady(ctx context.Context, id string) (bool, error) {
	n, _, err := c.cli.NodeInspectWithRaw(ctx, id)
	if err != nil {
		return false, fmt.Errorf("inspect swarm node %s: %w", id, err)
	}
	return n.Status.State == swarm.NodeStateReady, nil
}

// nodes maps node IDs to their names and addresses.
func (c *Cluster) nodes(ctx context.Context) (map[string]nodeInfo, error) {
	list, err := c.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the Swarm nodes: %w", err)
	}
	out := make(map[string]nodeInfo, len(list))
	for _, n := range list {
		name := n.Spec.Name
		if name == "" {
			name = n.Description.Hostname
		}
		addr := n.Status.Addr
		if ip := net.ParseIP(addr); ip == nil || ip.IsUnspecified() {
			// A manager's Status.Addr can be 0.0.0.0; its advertised address is known.
			if n.ManagerStatus != nil {
				if h, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
					addr = h
				}
			}
		}
		out[n.ID] = nodeInfo{name: name, addr: addr}
	}
	return out, nil
}
