package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

func envStopCommand() *cobra.Command {
	c := &clientOptions{}
	var all bool
	var message string
	cmd := &cobra.Command{
		Use:   "stop (ENV | --all)",
		Short: "Stop every service of an environment (audited); they stay stopped until deployed again",
		Long: `Stop every service of ENV, or of every environment with --all. Stopping the server does
not stop what it deployed: services go on serving, and the next server adopts them. This is
how services are taken down on purpose. The audit log and each service's history say who
stopped it and why (-m). A restarted server leaves them stopped; the next deploy or
promotion of a service starts it again. Needs the environment's approval role, if it has one.`,
		Example: "  drover env stop staging -m \"maintenance window\"\n  drover env stop --all",
		Args: func(cmd *cobra.Command, args []string) error {
			if all {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			envs := args
			if all {
				var list []struct{ Name string }
				if err := c.call(http.MethodGet, "/api/v1/environments", nil, &list); err != nil {
					return err
				}
				envs = nil
				for _, e := range list {
					envs = append(envs, e.Name)
				}
			}
			out := cmd.OutOrStdout()
			for _, env := range envs {
				var ans struct{ Stopped []string }
				if err := c.call(http.MethodPost, "/api/v1/environments/"+env+"/stop", map[string]string{"message": message}, &ans); err != nil {
					return fmt.Errorf("%s: %w", env, err)
				}
				if len(ans.Stopped) == 0 {
					fmt.Fprintf(out, "%s: nothing runs there\n", env)
					continue
				}
				fmt.Fprintf(out, "%s: stopped %s\n", env, strings.Join(ans.Stopped, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "stop the services of every environment")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why, for the audit log")
	c.flags(cmd)
	return cmd
}
