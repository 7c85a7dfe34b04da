package engine

import (
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/report"
)

// EventType says what an Event reports.
type EventType int

// The events of a run, in the order they happen for each step.
const (
	RunStarted   EventType = iota // Nodes lists every step of the run
	StepStarted                   // an attempt of Step started
	StepLog                       // Line is one line the step printed
	StepNote                      // Line is a remark of Drover's about Step: a retry, a report, a skip
	StepFinished                  // Result is the step's outcome (also for skipped steps)
	RunFinished                   // Run is the run's outcome
	// StepLost says an attempt of Step was lost (its agent stopped answering); Line
	// says why. Another attempt follows unless the step has none left.
	StepLost
)

// Event is one thing that happened during a run.
type Event struct {
	Type    EventType
	Time    time.Time
	Step    string           // the node's name; "" for run events
	Attempt int              // the attempt, from 1, for StepStarted, StepLog and StepNote
	Line    string           // StepLog and StepNote: one line without its newline
	Nodes   []*pipeline.Node // RunStarted
	Result  *StepResult      // StepFinished
	Run     *RunResult       // RunFinished

	masked bool // Line came through the run's masker already
}

// Sink receives a run's events. The engine never calls Handle concurrently and calls it in
// the order things happened. Handle must return quickly: a slow sink slows the steps'
// output. Events and their fields are not modified after Handle returns.
type Sink interface {
	Handle(Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Handle calls f(e).
func (f SinkFunc) Handle(e Event) { f(e) }

// Sinks fans events out to several sinks in order.
type Sinks []Sink

// Handle passes e to every sink.
func (s Sinks) Handle(e Event) {
	for _, sink := range s {
		sink.Handle(e)
	}
}

// Status is the state of a step or a run.
type Status string

// The states of steps and runs (shared/DESIGN.md). Pending and running are in progress;
// the others are final.
const (
	Pending   Status = "pending"
	Running   Status = "running"
	Success   Status = "success"
	Failure   Status = "failure"
	Skipped   Status = "skipped"
	Cancelled Status = "cancelled"
	Errored   Status = "error"   // Drover could not run the step: not the step's fault
	Waiting   Status = "waiting" // an approval: step waits for a person; the run stops here and resumes later
	Lost      Status = "lost"    // the agent running the step stopped answering: no result, not the step's fault
)

// StepResult is the outcome of one step.
type StepResult struct {
	Name      string               `json:"name"`
	Status    Status               `json:"status"`
	Allowed   bool                 `json:"allowed_failure,omitempty"` // a failure that allow_failure let through
	Reason    string               `json:"reason,omitempty"`          // why it failed or was skipped, for people
	ExitCode  int                  `json:"exit_code"`
	Attempts  int                  `json:"attempts"`
	Started   time.Time            `json:"started,omitzero"` // zero for a skipped step
	Finished  time.Time            `json:"finished,omitzero"`
	Reports   *report.Summary      `json:"reports,omitempty"`   // nil when the step declares no reports
	Artifacts []ocispec.Descriptor `json:"artifacts,omitempty"` // one layer per declared path
	// Image is what a build: step made: "REPO@DIGEST" in Drover's registry, or an image
	// id ("sha256:...") kept on this machine when the run pushes nowhere.
	Image string `json:"image,omitempty"`
	// Agent is the agent that ran the last attempt; "" for this machine.
	Agent string `json:"agent,omitempty"`
}

// Duration is how long the step ran; 0 when it did not.
func (r *StepResult) Duration() time.Duration {
	if r.Started.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// RunResult is the outcome of a run.
type RunResult struct {
	Status   Status              `json:"status"`
	Steps    []*StepResult       `json:"steps"` // in the graph's order
	Started  time.Time           `json:"started"`
	Finished time.Time           `json:"finished"`
	Artifact *ocispec.Descriptor `json:"artifact,omitempty"` // the run's artifact manifest; nil when it has none
	Reason   string              `json:"reason,omitempty"`   // why the run itself (not a step) errored
}
