package main

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/deploy"
)

func scaleCommand() *cobra.Command {
	c := &clientOptions{}
	var env string
	var reset bool
	cmd := &cobra.Command{
		Use:   "scale PROJECT --env ENV (N | --reset)",
		Short: "Set how many instances a project's service runs in an environment",
		Long: fmt.Sprintf(`Set the replica count of PROJECT's service in ENV: the desired count. What runs now grows
or shrinks in place (new instances join once healthy, extra ones are drained and stopped),
and the count holds across deploys and env apply until --reset. It outranks
environments.yml's replicas, which outranks drover.yml's service.replicas. 1 to %d.
Audited; needs the environment's approval role where it has one.`, deploy.MaxReplicas),
		Example: "  drover scale web --env production 4\n  drover scale web --env production --reset",
		Args: func(cmd *cobra.Command, args []string) error {
			if reset {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return badInput(fmt.Errorf("--env is required: the environment to scale in"))
			}
			body := map[string]any{"project": args[0], "reset": true}
			if !reset {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 || n > deploy.MaxReplicas {
					return badInput(fmt.Errorf("%q: give a number of instances from 1 to %d, or --reset", args[1], deploy.MaxReplicas))
				}
				body = map[string]any{"project": args[0], "replicas": n}
			}
			var ans struct{ Replicas int }
			if err := c.call(http.MethodPut, "/api/v1/environments/"+env+"/scale", body, &ans); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case reset && ans.Replicas == 0:
				fmt.Fprintf(out, "%s in %s: the count set by hand is gone; the next deploy takes the environment's or the service's own\n", args[0], env)
			case reset:
				fmt.Fprintf(out, "%s in %s: back to %d instances (the environment's or the service's own count)\n", args[0], env, ans.Replicas)
			default:
				fmt.Fprintf(out, "%s in %s: %d instances\n", args[0], env, ans.Replicas)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment, e.g. production")
	cmd.Flags().BoolVar(&reset, "reset", false, "remove the count set by hand")
	c.flags(cmd)
	return cmd
}
