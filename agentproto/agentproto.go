// Package agentproto is the wire protocol between a Drover server and its agents (drover
// agent run): JSON over HTTP or HTTPS, every connection opened by the agent.
//
//   - POST /api/v1/agent/poll, with the agent token: the agent says who it is, which
//     leases it still runs and how many slots are free. The server records it as seen,
//     extends those leases, and answers with new leases for free slots, leases to stop and
//     workspaces to remove; it holds the request up to Poll.Wait when it has nothing to
//     say. An agent always has one poll in flight: it is also its heartbeat.
//   - POST /api/v1/agent/leases/ID/log, with the lease's token: a chunk of the step's
//     output, already masked, starting at byte Offset of it (header Drover-Log-Offset).
//     The server keeps only bytes past what it has, so a chunk sent again is harmless.
//   - POST /api/v1/agent/leases/ID/done, with the lease's token: the attempt's result,
//     sent once every byte of its log was accepted.
//
// The lease's token is the attempt's credential: it clones the run's project, reads and
// writes blobs of the project's registry repository, pushes and pulls the project's
// images (PROJECT/image, as build: steps do), and reports on its lease. It is
// revoked once the attempt is over, which fences off a late report of an attempt the
// server gave up on (409 Conflict, or 401 for the revoked token).
package agentproto

import (
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/report"
)

// Routes of the protocol.
const (
	PollPath = "/api/v1/agent/poll"
	// LeasePath is the prefix of a lease's routes: LeasePath + ID + "/log" or "/done".
	LeasePath = "/api/v1/agent/leases/"
	// OffsetHeader carries a log chunk's offset.
	OffsetHeader = "Drover-Log-Offset"
)

// Poll is what an agent sends to ask for work and say it is alive.
type Poll struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Version  string            `json:"version"`
	Capacity int               `json:"capacity"`
	Free     int               `json:"free"`    // slots free for new leases
	Running  []int64           `json:"running"` // leases it runs or still has to report
	// Wait is how long the server may hold the request when it has nothing to say;
	// the server caps it.
	Wait time.Duration `json:"wait"`
}

// PollReply is the server's answer to a Poll.
type PollReply struct {
	Leases []Lease `json:"leases,omitempty"`
	// Stop lists leases the agent must stop (the run was cancelled, the step timed out)
	// or forget (the server no longer knows them: it gave them to another agent): the
	// agent kills their steps and reports nothing more about them, except the result of
	// a stopped one, which the server still takes.
	Stop []int64 `json:"stop,omitempty"`
	// Forget lists workspaces (Lease.Workspace) whose runs ended: the agent removes them.
	Forget []string `json:"forget,omitempty"`
	// Drained says the agent takes no new leases until it is resumed.
	Drained bool `json:"drained,omitempty"`
	// LeasePeriod is how long the server waits without hearing from the agent before
	// it counts its leases lost.
	LeasePeriod time.Duration `json:"lease_period"`
}

// Lease is one attempt of one step for an agent to run.
type Lease struct {
	ID    int64  `json:"id"`
	Token string `json:"token"` // the attempt's credential
	// Workspace names the folder the step runs in, unique to the run (or, with Fresh,
	// to this attempt): steps of one run on one agent share it.
	Workspace string `json:"workspace"`
	// Fresh says the workspace starts empty even when it exists: a fresh checkout plus
	// Inputs.
	Fresh bool `json:"fresh,omitempty"`
	// Checkout is what to check out when the workspace is new: the run's commit from
	// the server's git (with Token as password).
	Checkout Checkout `json:"checkout"`
	// Inputs are the artifacts of the steps this one needs, to unpack into a fresh
	// workspace: layers of Repository in the server's registry.
	Inputs []ocispec.Descriptor `json:"inputs,omitempty"`
	// Repository is the registry repository the step's artifacts go to and come from.
	Repository string `json:"repository"`

	Name    string         `json:"name"` // the step's node name, e.g. "test (GOARCH=arm64)"
	Step    *pipeline.Step `json:"step"` // the step as written
	Script  string         `json:"script"`
	Attempt int            `json:"attempt"`
	Run     string         `json:"run"` // what a container backend names per-run things after
	// Env is the step's environment without the agent's own (PATH, HOME, ...), which
	// the agent adds below it. DROVER_WORKSPACE is the agent's to set. Secrets are here:
	// the agent keeps them in memory only and masks them in the output.
	Env []string `json:"env"`
	// Hidden are values the agent masks in the step's output before it leaves: the
	// secrets the step asked for.
	Hidden []string `json:"hidden,omitempty"`

	// ImageRef, for a build: step, is "REPO:TAG" in the server's registry to push the
	// image to (with Token as the password); Self is what image: self means, a
	// "REPO@DIGEST" there; Annotations label a built image.
	ImageRef    string            `json:"image_ref,omitempty"`
	Self        string            `json:"self,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Checkout says where a run's source comes from.
type Checkout struct {
	URL    string `json:"url"` // the project's git URL on the server
	Commit string `json:"commit"`
}

// Done is an attempt's result.
type Done struct {
	ExitCode int `json:"exit_code"`
	// Error says why the script could not be run or was stopped: not the step's fault.
	Error string `json:"error,omitempty"`
	// LogSize is how many bytes of output the step made, every one of which the server
	// accepted before Done was sent (some may have been dropped by the agent's bound;
	// a line in the log says so).
	LogSize int64 `json:"log_size"`
	// Reports is what the step's reports said, read on the agent; nil when it has none.
	Reports        *report.Summary `json:"reports,omitempty"`
	ReportWarnings []string        `json:"report_warnings,omitempty"`
	ReportError    string          `json:"report_error,omitempty"`
	// Artifacts are the step's artifacts, packed on the agent and pushed to Repository,
	// after a successful script only.
	Artifacts       []ocispec.Descriptor `json:"artifacts,omitempty"`
	ArtifactError   string               `json:"artifact_error,omitempty"`
	ArtifactMissing bool                 `json:"artifact_missing,omitempty"` // a declared path does not exist
	// Built is what a build: step made: "REPO@DIGEST" pushed to the server's registry.
	Built string `json:"built,omitempty"`
}
