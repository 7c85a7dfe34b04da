package main

import (
	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/sandbox"
)

// sandboxCommand is how a server that is not root starts steps and service instances:
// confined with Landlock to the paths it names. It is for the server's use, so hidden.
func sandboxCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "sandbox",
		Short:  "Run a command confined to some paths (the server starts steps this way)",
		Hidden: true,
		Args:   cobra.NoArgs,
	}
	var c sandbox.Confinement
	run := &cobra.Command{
		Use:   "exec [--ro PATH]... [--rw PATH]... -- COMMAND [ARG...]",
		Short: "Confine this process with Landlock to the paths given, then exec COMMAND",
		Long: `Confine this process with Landlock (Linux 6.12+, ABI 6) so that it reads only the --ro
paths and writes only the --rw paths, and cannot signal processes outside, then replace
it with COMMAND. A server that is not root starts each step and service instance so.`,
		Example: `  drover sandbox exec --ro /usr --ro /etc --rw /tmp/ws -- sh -c 'ls /tmp/ws'`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := sandbox.Exec(c, args); err != nil {
				return badInput(err)
			}
			return nil
		},
	}
	run.Flags().StringArrayVar(&c.ReadOnly, "ro", nil, "a path it may read (repeatable)")
	run.Flags().StringArrayVar(&c.ReadWrite, "rw", nil, "a path it may read and write (repeatable)")
	run.Flags().StringArrayVar(&c.Hide, "hide", nil, "a socket it must not reach, covered in a mount namespace of its own (repeatable)")
	run.Flags().BoolVar(&c.Hidden, "hidden", false, "set by sandbox exec itself: the sockets to hide are to be covered here")
	_ = run.Flags().MarkHidden("hidden")
	cmd.AddCommand(run)
	return cmd
}
