// Package store keeps the server's state: projects, runs, their steps, users and their
// API tokens. One implementation over database/sql serves SQLite (the embedded default)
// and PostgreSQL; storetest holds the test suite both must pass.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers choose with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrSchemaTooNew = errors.New("the database schema is newer than this drover binary")
)

// Project is a git repository Drover builds.
type Project struct {
	ID            int64
	Name          string        // unique; letters, digits, '-', '_', '.'
	URL           string        // remote repository followed; "" for a repository hosted by Drover
	PollInterval  time.Duration // how often URL is polled; 0 = never (webhooks only)
	WebhookSecret string        // HMAC secret or token for /hooks/NAME; "" = webhooks refused
	KeepRuns      int           // published artifacts of the last KeepRuns runs are kept; 0 = the server's default
	KeepFor       time.Duration // published artifacts younger than this are kept; 0 = the server's default
	// DefaultBranch is the branch secrets of environments with approval rules go to;
	// "" while it is not known.
	DefaultBranch string
	// BranchSecrets lets runs of other branches than the default of a followed
	// (external) repository have secrets; without it they get none.
	BranchSecrets bool
	Created       time.Time
}

// Run is one execution of a project's pipeline for one commit.
type Run struct {
	ID        int64
	ProjectID int64
	Project   string // the project's name (filled in on reads)
	Number    int    // per project, from 1, assigned by CreateRun
	Status    string // pending, running, waiting, success, failure, cancelled, error
	Reason    string // why it ended as it did (error, cancel), for people
	Branch    string
	Commit    string
	Message   string // the commit's subject line
	Event     string // push, manual, ...
	Trigger   string // who or what started it: a user name, "webhook", "poll"
	RerunOf   int    // the run number this re-runs; 0 for a fresh run
	FromStep  string // re-run starting at this step; steps before it keep RerunOf's results
	Artifact  string // the run's artifact manifest digest; "" when none
	Created   time.Time
	Started   time.Time // zero until it starts
	Finished  time.Time // zero until it ends
}

// Step is the state of one step of a run.
type Step struct {
	RunID     int64
	Name      string
	Position  int // order in the compiled graph, from 0
	Needs     []string
	Status    string // pending, running, success, failure, skipped, cancelled, error
	Allowed   bool   // a failure allow_failure let through
	Reason    string
	ExitCode  int
	Attempts  int
	Started   time.Time
	Finished  time.Time
	Reports   []byte // JSON of report.Summary; nil when none
	Artifacts []byte // JSON of the step's layer descriptors; nil when none
	Agent     string // the agent that ran its last attempt; "" for the server itself
}

// Agent is a machine that runs steps for the server (drover agent run). It is recorded
// when it first asks for work and kept up to date while it does.
type Agent struct {
	Name     string
	Labels   map[string]string // what steps' agent: labels select it by
	Version  string            // the agent's drover version
	Capacity int               // steps it runs at once
	Drained  bool              // it finishes its steps and takes no new ones
	Created  time.Time         // first seen
	Seen     time.Time         // last asked for work or sent a heartbeat
}

// Lease states.
const (
	LeaseActive = "active" // the agent runs it
	LeaseDone   = "done"   // the agent reported its result
	LeaseLost   = "lost"   // the agent stopped answering; the attempt is over
	LeaseEnded  = "ended"  // the server gave it up: the run was cancelled or the step timed out
)

// Lease is one attempt of one step handed to an agent. Its token is the attempt's
// credential and fencing token: valid only while the lease is active, so a late report
// of an attempt that was given up is refused.
type Lease struct {
	ID      int64
	RunID   int64
	Step    string
	Attempt int
	Agent   string
	// TokenHash is the SHA-256 of the lease's token, as for API tokens.
	TokenHash []byte
	Status    string // LeaseActive, LeaseDone, LeaseLost or LeaseEnded
	Reason    string // why it was lost or ended
	// Home says the step runs in the run's workspace on Agent (the run's first compute
	// step, or a later one with the same labels); false for a fresh checkout elsewhere.
	Home    bool
	Created time.Time
	Updated time.Time
}

// LeaseFilter selects leases. Zero fields do not filter.
type LeaseFilter struct {
	RunID  int64
	Agent  string
	Status []string
}

// User is a person who holds tokens: their role and approval roles are the tokens'.
type User struct {
	ID      int64
	Name    string   // unique; who runs, approvals, deploys and the audit log name
	Role    string   // admin, developer, viewer
	Groups  []string // approval roles the user has, e.g. release-manager
	Created time.Time
}

// Token is an API token: a person's, which acts as its user, or a machine's, which
// may do one job only. Only the token's SHA-256 hash is stored.
type Token struct {
	ID     int64
	UserID int64 // the user it belongs to; 0 for a machine token
	// User, Role and Groups are the user's, filled in on reads; empty for a machine
	// token.
	User   string
	Role   string
	Groups []string
	// Machine is the job of a machine token: agent, proxy or pull; "" for a person's.
	Machine string
	// Repository is the one registry repository a pull token reads; "" otherwise.
	Repository string
	Label      string // what the token is for, in its holder's words
	Hash       []byte
	Created    time.Time
	Expires    time.Time // refused from then on; zero: never
	Revoked    time.Time // refused from then on; zero: not revoked
	LastUsed   time.Time // at most a minute or so behind (see TouchToken); zero: never used
}

// TokenFilter selects tokens for listing. Zero fields do not filter.
type TokenFilter struct {
	UserID int64
}

// Environment is a named place releases are deployed to (staging, production, ...).
type Environment struct {
	ID       int64
	Name     string
	Strategy string // blue-green or rolling: how deploys replace instances
	Track    string // a branch: every release that passes on it is deployed here; "" for none
	Replicas int    // instances of each service here, over the service's own; 0 keeps it
	Approval string // an approval role deploys here need; "" for none
	Managed  bool   // declared in environments.yml (changed by plan and apply)
	// Separation: whoever pushed a change may not approve it alone for this environment.
	Separation bool
	// Runtime is where services run here: process, docker or swarm; "" for the
	// server's default.
	Runtime string
	// Swarm is the cluster of runtime swarm.
	Swarm Swarm
	// Services are per-service sizes and placements here (environments.yml), by
	// service name.
	Services map[string]ServiceSettings
	// IdleTimeout stops and deletes a developer environment nobody sent a request to
	// for this long; 0 keeps it.
	IdleTimeout time.Duration
	Created     time.Time
}

// Swarm says how to reach an environment's Docker Swarm cluster.
type Swarm struct {
	Host string `json:"host,omitempty"` // a manager's Docker Engine: unix:///... or tcp://HOST:PORT
	TLS  string `json:"tls,omitempty"`  // a folder with ca.pem, cert.pem and key.pem
}

// ServiceSettings are a service's size and placement in one environment, over
// drover.yml's; zero fields keep those.
type ServiceSettings struct {
	Replicas    int      `json:"replicas,omitempty"`
	Spread      string   `json:"spread,omitempty"`
	Constraints []string `json:"constraints,omitempty"`
	CPU         string   `json:"cpu,omitempty"`
	Memory      string   `json:"memory,omitempty"`
}

// Scale is a replica count a person set for a project's service in an environment
// (drover scale): it holds across deploys and outranks environments.yml's replicas and
// drover.yml's, until removed.
type Scale struct {
	Environment string
	Project     string
	Replicas    int
	Actor       string // who set it
	Updated     time.Time
}

// Deployment is one change of the release a service runs in an environment.
type Deployment struct {
	ID          int64
	Environment string
	Service     string // the service's name (service.name, else the project's)
	Project     string
	Digest      string // the release's artifact manifest digest
	Tag         string // r12, or the run number when not a release
	Run         int    // the run the release came from
	Strategy    string
	Status      string // running, success (live, or replaced later), failure, rolled-back
	Reason      string // why it failed or was rolled back, for people
	Trigger     string // who or what deployed: a user, "run shop #12", "rollback", "reconcile"
	RollbackOf  int64  // for a rollback: the deployment it undid
	Created     time.Time
	Finished    time.Time // zero while running
}

// DeploymentFilter selects deployments for listing, newest first. Zero fields do not
// filter.
type DeploymentFilter struct {
	Environment string
	Service     string
	Project     string
	Run         int
	Status      []string
	Limit       int // 0 means 50
}

// Approval is an approval: step of a run: asked for when the run reached it, then
// decided by a person (or by its timeout).
type Approval struct {
	RunID    int64
	Step     string
	Role     string    // who may decide: holders of this approval role, and admins
	Deadline time.Time // the request is rejected when nobody decided by then; zero: never
	Decision string    // pending, approved, rejected
	Actor    string    // who decided
	Message  string
	Created  time.Time
	Decided  time.Time
}

// AuditEntry is one line of the append-only audit log: who changed what runs where.
type AuditEntry struct {
	ID          int64
	Time        time.Time
	Actor       string // a user's name, or "drover" for what the server did on its own
	Action      string // deploy, rollback, promote, approve, reject, environment, user-add, token-create, token-revoke
	Environment string
	Project     string
	Digest      string
	Run         int
	Deployment  int64  // the deployment it made, if any
	Result      string // success, failure, ...
	Message     string // why, in the actor's words or the server's
}

// Secret is a secret's value, encrypted, and what is known of it. Name, Project and
// Environment are its key: setting it again replaces the value and counts Version up.
type Secret struct {
	Name        string
	Project     string // "" for a global secret
	Environment string // "" for one of no particular environment
	Branch      string // a path.Match glob of the branches it goes to; "" for every branch
	Version     int    // 1 for the first value, one more each time it is replaced
	Ciphertext  []byte // the value, encrypted; never the value itself
	KeyID       string // which key encrypted Ciphertext
	Actor       string // who set the current version
	Updated     time.Time
}

// SecretFilter selects secrets for listing.
type SecretFilter struct {
	// Project selects the secrets of this project; "" the global ones.
	Project string
	// Global adds the global secrets to those of Project.
	Global bool
	// All selects every secret, whatever the other fields say.
	All bool
}

// RunFilter selects runs for listing. Zero fields do not filter.
type RunFilter struct {
	Project string
	Branch  string
	Status  []string
	Before  int  // only runs numbered below this (paging, with Project)
	Limit   int  // at most this many; 0 means 50
	Oldest  bool // oldest first (the queue's order) instead of newest first
}

// Store is the server's persistence. Every method is safe for concurrent use and
// honours ctx. Reads of missing things return errors wrapping ErrNotFound.
type Store interface {
	CreateProject(ctx context.Context, p *Project) error // sets ID and Created; ErrExists on a taken name
	Project(ctx context.Context, name string) (*Project, error)
	// ProjectFold returns the project whose name equals name regardless of ASCII case
	// (the oldest, should several), or ErrNotFound: project names share one registry
	// namespace, which is lower case.
	ProjectFold(ctx context.Context, name string) (*Project, error)
	Projects(ctx context.Context) ([]*Project, error) // by name
	// UpdateProject writes p's URL, PollInterval, WebhookSecret, KeepRuns, KeepFor,
	// DefaultBranch and BranchSecrets; ErrNotFound when no project has p.Name.
	UpdateProject(ctx context.Context, p *Project) error

	// CreateRun stores r with the next number of its project, atomically even when
	// several runs are created at once, and sets ID, Number and Created.
	CreateRun(ctx context.Context, r *Run) error
	Run(ctx context.Context, project string, number int) (*Run, error)
	RunByID(ctx context.Context, id int64) (*Run, error)
	Runs(ctx context.Context, f RunFilter) ([]*Run, error) // newest first
	// UpdateRun writes r's Status, Reason, Commit, Message, Artifact, Started and Finished.
	UpdateRun(ctx context.Context, r *Run) error
	// TransitionRun sets run id's status to to only if it is one of from; it reports
	// whether it did. The queue claims runs with it, so two workers never run one run.
	TransitionRun(ctx context.Context, id int64, from []string, to string, reason string) (bool, error)
	CountRuns(ctx context.Context) (map[string]int, error) // by status, for /metrics

	// SaveStep inserts or replaces the step (RunID, Name).
	SaveStep(ctx context.Context, s *Step) error
	Steps(ctx context.Context, runID int64) ([]*Step, error) // by Position

	// CreateEnvironment stores e and sets ID and Created; ErrExists on a taken name.
	CreateEnvironment(ctx context.Context, e *Environment) error
	Environment(ctx context.Context, name string) (*Environment, error)
	Environments(ctx context.Context) ([]*Environment, error) // by name
	// UpdateEnvironment writes e's Strategy, Track, Replicas, Approval, Managed, IdleTimeout, Separation, Runtime, Swarm and Services.
	UpdateEnvironment(ctx context.Context, e *Environment) error
	// DeleteEnvironment removes an environment and its deploy history.
	DeleteEnvironment(ctx context.Context, name string) error

	// SetScale stores s, replacing the scale of its environment and project, and sets
	// Updated; ErrNotFound when the environment does not exist.
	SetScale(ctx context.Context, s *Scale) error
	// Scales returns the scales set in env, by project.
	Scales(ctx context.Context, env string) ([]*Scale, error)
	// DeleteScale removes the scale of project in env; ErrNotFound when there is none.
	DeleteScale(ctx context.Context, env, project string) error

	// CreateDeployment stores d and sets ID and Created; ErrNotFound when its
	// environment does not exist.
	CreateDeployment(ctx context.Context, d *Deployment) error
	// UpdateDeployment writes d's Status, Reason and Finished.
	UpdateDeployment(ctx context.Context, d *Deployment) error
	Deployments(ctx context.Context, f DeploymentFilter) ([]*Deployment, error) // newest first

	// RequestApproval stores a pending approval unless (RunID, Step) already has one;
	// it returns the stored one either way.
	RequestApproval(ctx context.Context, a *Approval) (*Approval, error)
	// DecideApproval sets a pending approval's Decision, Actor, Message and Decided; it
	// returns ErrNotFound when there is none and ErrExists when it was decided already.
	DecideApproval(ctx context.Context, a *Approval) error
	Approvals(ctx context.Context, runID int64) ([]*Approval, error)
	// PendingApprovals lists every undecided approval, oldest first.
	PendingApprovals(ctx context.Context) ([]*Approval, error)

	// AppendAudit adds e to the audit log and sets its ID and Time. Entries are never
	// changed or removed.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	Audit(ctx context.Context, before int64, limit int) ([]*AuditEntry, error) // newest first; before > 0 pages by ID

	// CreateUser stores u and sets ID and Created; ErrExists on a taken name.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, name string) (*User, error)
	Users(ctx context.Context) ([]*User, error) // by name

	// CreateToken stores t's UserID (0 for a machine token), Machine, Repository,
	// Label, Hash and Expires, and sets ID and Created (and User, Role and Groups);
	// ErrExists on a stored hash, ErrNotFound when UserID names no user.
	CreateToken(ctx context.Context, t *Token) error
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	Token(ctx context.Context, id int64) (*Token, error)
	Tokens(ctx context.Context, f TokenFilter) ([]*Token, error) // by ID, revoked and expired ones too
	// RevokeToken sets token id's Revoked to now, unless it was revoked already (the
	// first time stays); ErrNotFound when there is no such token.
	RevokeToken(ctx context.Context, id int64) error
	// TouchToken sets token id's LastUsed to at, unless it is later already. Callers
	// keep it to about once a minute per token: it is a write.
	TouchToken(ctx context.Context, id int64, at time.Time) error
	CountTokens(ctx context.Context) (int, error) // revoked and expired ones too

	// PutSecret stores s: a new secret at Version 1, or, when one has its Name,
	// Project and Environment, a new value of it (Branch, Ciphertext, KeyID, Actor) at
	// its Version plus one, atomically. It sets s.Version and s.Updated.
	PutSecret(ctx context.Context, s *Secret) error
	// Secrets lists secrets with their ciphertexts, by name, project and environment.
	Secrets(ctx context.Context, f SecretFilter) ([]*Secret, error)
	// DeleteSecret removes a secret; ErrNotFound when there is none.
	DeleteSecret(ctx context.Context, name, project, env string) error
	// ReplaceSecretCiphertext re-encrypts a secret in place, only if it is still at
	// version (a rekey must not overwrite a value set meanwhile): ErrNotFound when no
	// secret has that key at that version. Version, Actor and Updated stay.
	ReplaceSecretCiphertext(ctx context.Context, name, project, env string, version int, ciphertext []byte, keyID string) error

	// SaveAgent records a, inserting it (Created set) or replacing every field but
	// Created.
	SaveAgent(ctx context.Context, a *Agent) error
	Agent(ctx context.Context, name string) (*Agent, error)
	Agents(ctx context.Context) ([]*Agent, error) // by name
	// DeleteAgent forgets an agent; ErrNotFound when there is none.
	DeleteAgent(ctx context.Context, name string) error

	// CreateLease records l, setting ID, Created and Updated.
	CreateLease(ctx context.Context, l *Lease) error
	// EndLease moves lease id from LeaseActive to status with reason, reporting whether
	// it was still active: only one of a result, a loss and a give-up wins.
	EndLease(ctx context.Context, id int64, status, reason string) (bool, error)
	Lease(ctx context.Context, id int64) (*Lease, error)
	Leases(ctx context.Context, f LeaseFilter) ([]*Lease, error) // by ID

	Close() error
}
