// Package pipeline is the drover.yml model: it parses the file with the position of every
// value, validates it, and compiles its steps into a DAG. It does no I/O and imports nothing
// of Drover's but internal/duration (a leaf that imports only the standard library, so
// durations read the same here as in flags and the API), so every other package can
// depend on it.
package pipeline

import "time"

// Pos is a 1-based line and column in the pipeline file.
type Pos struct {
	Line, Col int
}

// Pipeline is one parsed drover.yml.
type Pipeline struct {
	File       string   // the file name used in error messages
	Env        []EnvVar // variables for every step, in the order written
	Steps      []*Step  // in the order written
	Service    *Service // how the project's release runs; nil when the file has none
	AutoCancel bool     // a newer run of a branch cancels the older ones still going
	// Agent is the labels an agent needs to run the pipeline's steps (agent: labels:),
	// under each step's own.
	Agent map[string]string
}

// EnvVar is one NAME: value pair. Value may reference other variables as ${NAME}.
type EnvVar struct {
	Name, Value string
	Pos         Pos
}

// Step is one entry of steps:.
type Step struct {
	Name string
	Pos  Pos // where the step's mapping starts

	Run          string        // a shell script run with sh -e
	Needs        []string      // steps this one waits for
	NeedsSet     bool          // needs: was written; otherwise the step waits for the one above it
	NeedsPos     []Pos         // position of each Needs entry
	Env          []EnvVar      // variables of this step, over the pipeline's
	Secrets      []string      // secrets given to the step as variables of these names
	When         When          // conditions; the zero When runs when everything before succeeded
	Matrix       []MatrixAxis  // each combination of values is a step of its own
	Retry        int           // extra attempts after a failure; 0 runs once
	Timeout      time.Duration // per attempt; 0 means none
	AllowFailure bool          // a failure of this step does not fail the run
	Reports      Reports
	Gates        Gates
	Artifacts    []string // workspace paths published as the run's artifact
	// Agent is the labels an agent needs to run the step: the pipeline's agent: labels
	// with the step's own over them. nil runs it on any agent.
	Agent map[string]string

	// Fields acted on by the server, the Docker backend and deployments.
	Image       string    // run the script in a container of this image
	Services    []Sidecar // containers started beside the step
	Build       *Build    // build a container image
	Deploy      string    // deploy this run's release to the named environment
	Approval    *Approval // wait for a person to approve
	Environment string    // run the step against an environment, e.g. "ephemeral"
}

// MatrixAxis is one variable of a matrix and its values.
type MatrixAxis struct {
	Name   string
	Values []string
}

// Status selects the run states in which a step runs.
type Status string

// The values of when.status.
const (
	StatusSuccess Status = "success" // run only while nothing has failed (the default)
	StatusFailure Status = "failure" // run only when something has failed
	StatusAlways  Status = "always"  // run whatever happened, also after cancellation
)

// When are the conditions under which a step runs. Empty lists match everything.
type When struct {
	Branch []string // globs of branch names
	Event  []string // push, pull_request, tag, manual, cron
	Path   []string // globs; the step runs when a changed file matches one
	Status Status   // "" means StatusSuccess
}

// Reports are the test and coverage files a step writes.
type Reports struct {
	JUnit    []string // glob patterns relative to the workspace
	Coverage string   // a Go cover profile or Cobertura XML file
}

// Gates are the thresholds the step's reports must meet.
type Gates struct {
	Coverage *float64 // minimum coverage percent
	Failures *int     // maximum failed tests (default 0 when a JUnit report exists)
}

// Sidecar is a container started beside a step, reachable by its name.
type Sidecar struct {
	Name, Image string
	Env         []EnvVar
	Command     []string
}

// Build builds a container image from the workspace.
type Build struct {
	Context, Dockerfile string
	Tags                []string
}

// Approval holds the run until a person with Role approves it.
type Approval struct {
	Role    string
	Timeout time.Duration // 0 waits for ever
}

// Service describes how the project's release runs when it is deployed.
type Service struct {
	Name        string
	Command     string
	Image       string
	Health      Health
	Replicas    int
	Requires    []string
	Env         []EnvVar
	Secrets     []string // secrets given to every instance, resolved per environment
	StopTimeout time.Duration
	Resources   Resources
	Placement   Placement
}

// Placement says where a cluster runtime (runtime: swarm) puts a service's instances.
type Placement struct {
	// Spread is a node label the instances are spread evenly over, like
	// node.labels.zone: the seeds' availability zones.
	Spread string
	// Constraints are Swarm placement constraints, like node.labels.zone!=c.
	Constraints []string
}

// Health is the HTTP check that decides readiness and liveness.
type Health struct {
	Path               string
	Interval, Timeout  time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
}

// Resources limit a container instance.
type Resources struct {
	CPU    string
	Memory string
}
