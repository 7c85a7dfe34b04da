// Package secret keeps the values steps and services need but no one may read back:
// encrypted at rest with AES-256-GCM under a key file of the server's, scoped to a
// project and an environment, filtered by branch, versioned, and resolved for a step or
// a service most specific scope first. Nothing here ever returns a value to a person:
// only Resolve returns values, for the runner and deployments.
//
// A Keyring (keyring.go) holds the key: OpenKeyring makes the key file on first use and
// refuses one others may read. A Vault (vault.go) sets, lists and removes secrets in the
// store, noting each change in the audit log; Resolve (resolve.go) picks a value for a
// step or service; Rekey (rekey.go) moves every value to a new key, and a rekey cut
// short is finished by FinishRekey, which the server calls when it starts.
package secret

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Key is what a secret is stored under. Project "" is a global secret; Environment ""
// is one for no particular environment.
type Key struct {
	Name        string // an environment variable's name: [A-Z_][A-Z0-9_]*
	Project     string
	Environment string
}

// String names the secret and its scope, for messages and the audit log.
func (k Key) String() string {
	s := k.Name
	switch {
	case k.Project == "" && k.Environment == "":
		return s + " (global)"
	case k.Project == "":
		return s + " (global, environment " + k.Environment + ")"
	case k.Environment == "":
		return s + " (project " + k.Project + ")"
	}
	return s + " (project " + k.Project + ", environment " + k.Environment + ")"
}

// Meta is what anyone with access may know of a secret: never its value.
type Meta struct {
	Key
	Branch  string // a glob of branch names the value goes to; "" for every branch
	Version int    // 1 for the first value, one more each time it is set again
	Actor   string // who set the current version
	Updated time.Time
}

var (
	namePattern = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	// envPattern is what deploy accepts as an environment's name (a host name label).
	envPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// CheckName says why name cannot name a secret, or returns nil.
func CheckName(name string) error {
	if !namePattern.MatchString(name) || len(name) > 200 {
		return invalidf("secret name %q: use an environment variable's name, upper case: [A-Z_][A-Z0-9_]*, like DB_PASSWORD", name)
	}
	return nil
}

// CheckKey says why k cannot be a secret's key, or returns nil: its name as CheckName
// says, a project name without control characters or '/', an environment's name as
// deploy takes it (lower-case letters, digits and '-').
func CheckKey(k Key) error {
	if err := CheckName(k.Name); err != nil {
		return err
	}
	if len(k.Project) > 200 || strings.ContainsFunc(k.Project, func(r rune) bool { return r < ' ' || r == 0x7f || r == '/' }) {
		return invalidf("project %q: not a project's name", k.Project)
	}
	if k.Environment != "" && !envPattern.MatchString(k.Environment) {
		return invalidf("environment %q: use an environment's name: lower-case letters, digits and '-', like staging", k.Environment)
	}
	return nil
}

// ErrInvalid is wrapped by the errors of what cannot be set: a bad name, scope, value
// or branch glob. Their text says why and what to do.
var ErrInvalid = errors.New("invalid secret")

// kindError is an error with a message of its own that unwraps to one of the package's
// errors (ErrInvalid, ErrMissing, ErrWithheld).
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// invalidf is an error wrapping ErrInvalid with the message format says.
func invalidf(format string, args ...any) error {
	return &kindError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// ErrMissing is wrapped by Resolve's error for a secret no scope holds.
var ErrMissing = errors.New("secret not set")

// ErrWithheld is wrapped by Resolve's error for a secret that exists but is kept from
// the asking run's branch.
var ErrWithheld = errors.New("secret withheld from this branch")

// Request is a step or a service asking for secrets.
type Request struct {
	Names   []string // the secrets asked for
	Project string
	// Environment is the step's environment (an ephemeral environment's base) or
	// deploy: target, or the environment a service is deployed to; "" for none.
	Environment string
	// Approval is the approval role the environment's deploys need; "" for none. In an
	// environment with an approval role only environment-scoped values count, and only
	// runs of DefaultBranch get them.
	Approval string
	// Branch is the branch of the run asking (for a service: of the run its release
	// came from); DefaultBranch the project's default branch.
	Branch, DefaultBranch string
	// External marks a project following a repository elsewhere: its runs of other
	// branches than the default get no secrets unless BranchSecrets allows them.
	External, BranchSecrets bool
	// For is what asks, for error messages: `step "test"`, `service web`.
	For string
}
