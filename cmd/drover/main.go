// Command drover is the Drover CLI and server: one binary for the whole delivery chain.
// This package holds flags and wiring only; the work happens in the packages it calls.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/pipeline"
)

// Exit codes, as documented in the README.
const (
	exitOK          = 0
	exitFailed      = 1   // a step or gate failed
	exitBadInput    = 2   // invalid pipeline, flags or files
	exitInterrupted = 130 // stopped by Ctrl-C or SIGTERM
)

// exitError carries the exit code an error should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// badInput marks err as the user's input being wrong: exit code 2.
func badInput(err error) error { return &exitError{code: exitBadInput, err: err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process's exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, ee.err)
		}
		return ee.code
	case errors.Is(err, pipeline.ErrInvalid):
		fmt.Fprintln(stderr, err)
		return exitBadInput
	default:
		// cobra's own errors (unknown flag, missing argument) are bad input too.
		fmt.Fprintf(stderr, "drover: %v\nRun 'drover --help' for usage.\n", err)
		return exitBadInput
	}
}

func rootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Drover: pipelines, artifacts, environments and deploys in one binary",
		Long: `Drover runs a project's pipeline (drover.yml) on this machine or on a server,
publishes what it builds as content-addressed artifacts, and deploys it.

Exit codes: 0 success, 1 a step or gate failed, 2 invalid input, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(), validateCommand(), schemaCommand(), versionCommand(), serverCommand(), userCommand(), tokenCommand(), projectCommand(), artifactCommand(), registryCommand(),
		deployCommand(), rollbackCommand(), promoteCommand(), envCommand(), auditCommand(), approveCommand(), upCommand(), sandboxCommand(),
		secretCommand())
	return root
}
