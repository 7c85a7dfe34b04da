// Command drover is the Drover CLI and server: one binary for the whole delivery chain.
// This package holds flags and wiring only; the work happens in the packages it calls.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/runtime/process"
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
	// The supervisor of a detached instance (runtime/process) is this binary, run by the
	// server with this hidden argument: not a command of the CLI.
	if len(os.Args) == 2 && os.Args[1] == process.ShimCommand {
		os.Exit(process.RunShim(os.Stdin, os.Stdout))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process's exit code. Every error it
// prints starts with "drover: ", except a pipeline file's problems, which are listed as
// FILE:LINE:COL: message, the form editors and terminals link. A mistake in the command
// line itself (an unknown command or flag, a missing argument) also names the help of
// the command it was made in.
func run(args []string, stdout, stderr io.Writer) int {
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	var ue *usageError
	var list pipeline.ErrorList
	switch {
	case errors.As(err, &ue):
		fmt.Fprint(stderr, usage(message(ue.err), ue.cmd))
		return exitBadInput
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, message(ee.err))
		}
		return ee.code
	case errors.As(err, &list) && err.Error() == list.Error():
		fmt.Fprintln(stderr, err)
		return exitBadInput
	case cmd == nil || cmd == root:
		// cobra's own errors before a command is found: an unknown command or flag.
		fmt.Fprint(stderr, usage(message(err), root))
		return exitBadInput
	default:
		fmt.Fprintln(stderr, message(err))
		return exitBadInput
	}
}

// usageError is a mistake in the command line of cmd: an unknown subcommand or flag, or
// the wrong arguments. It is printed with a pointer to cmd's help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usage is msg, a mistake in the command line of cmd, and where to read how it goes; a
// blank line sets the hint apart from a message of several lines (a did-you-mean).
func usage(msg string, cmd *cobra.Command) string {
	if strings.Contains(msg, "\n") {
		msg += "\n"
	}
	return fmt.Sprintf("%s\nRun '%s --help' for usage.\n", msg, cmd.CommandPath())
}

// message is err as printed: "drover: " and its text, without the names of Drover's
// internals a server's answer may carry, and without a trailing newline (cobra's
// did-you-mean ends with one). A list of a pipeline file's problems keeps its
// FILE:LINE:COL lines as they are.
func message(err error) string {
	text := strings.TrimRight(err.Error(), "\n")
	var list pipeline.ErrorList
	if errors.As(err, &list) && text == list.Error() {
		return text
	}
	text = serverText(text)
	if strings.HasPrefix(text, "drover: ") {
		return text
	}
	return "drover: " + text
}

// checkUsage makes every command of the tree under cmd report a bad command line as a
// usageError: a command group (a command that only holds subcommands) given a word that
// is none of them says so with a did-you-mean and exits 2, as the top level does, where
// cobra would print the group's help and exit 0; without a word it prints its help.
func checkUsage(cmd *cobra.Command) {
	if cmd.HasSubCommands() && !cmd.Runnable() && cmd.HasParent() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only for the top level
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
			}
			return &usageError{cmd: cmd, err: errors.New(msg)}
		}
	} else if check := cmd.Args; check != nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return &usageError{cmd: cmd, err: err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		checkUsage(sub)
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
	root.Version = versionString() // drover --version
	root.SetVersionTemplate("drover {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(), validateCommand(), schemaCommand(), versionCommand(), serverCommand(), userCommand(), tokenCommand(), projectCommand(), artifactCommand(), registryCommand(),
		deployCommand(), rollbackCommand(), promoteCommand(), scaleCommand(), envCommand(), auditCommand(), approveCommand(), upCommand(), sandboxCommand(),
		secretCommand(), proxyCommand(), caCommand(), agentCommand())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{cmd: cmd, err: err} })
	root.InitDefaultCompletionCmd() // now, so that checkUsage sees it too
	checkUsage(root)
	return root
}
