package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// withoutRequiresUsage is the help of --without-requires, on every command that deploys.
const withoutRequiresUsage = "deploy although services it requires run nowhere in the environment (their calls fail until they do)"

func promoteCommand() *cobra.Command {
	c := &clientOptions{}
	var from, to, message string
	var force, all, withoutRequires bool
	cmd := &cobra.Command{
		Use:   "promote PROJECT --from ENV --to ENV",
		Short: "Deploy to one environment exactly the release running in another",
		Long: `Promote: deploy to --to the digest of PROJECT that runs in --from, nothing rebuilt. A
release whose run did not pass its pipeline (it failed, or still waits at an approval) is
refused, unless an admin adds --force.

With --all instead of PROJECT, every service that runs in --from is promoted, the ones a
service requires before it; services --to runs at the same digest already are left alone.
It stops at the first promotion that fails and says what it did not promote.

A service whose requires run nowhere in --to is refused, unless --without-requires.`,
		Example: "  drover promote shop --from staging --to production -m \"QA signed off\"\n" +
			"  drover promote --all --from staging --to production",
		Args: func(cmd *cobra.Command, args []string) error {
			if all {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return badInput(fmt.Errorf("--from and --to are required"))
			}
			body := func(project string) map[string]any {
				return map[string]any{"project": project, "from": from, "message": message, "force": force,
					"without_requires": withoutRequires}
			}
			out := cmd.OutOrStdout()
			if !all {
				return c.promote(out, args[0], from, to, body(args[0]))
			}
			return c.promoteAll(out, from, to, body)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "environment whose release is promoted, e.g. staging")
	cmd.Flags().StringVar(&to, "to", "", "environment to deploy it to, e.g. production")
	cmd.Flags().BoolVar(&all, "all", false, "promote every service of --from, in the order their requires need")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why, for the audit log")
	cmd.Flags().BoolVar(&force, "force", false, forceUsage)
	cmd.Flags().BoolVar(&withoutRequires, "without-requires", false, withoutRequiresUsage)
	c.flags(cmd)
	return cmd
}

func (c *clientOptions) promote(out io.Writer, project, from, to string, body map[string]any) error {
	return c.deployCall(out, fmt.Sprintf("promoting %s from %s to %s", project, from, to), "/api/v1/environments/"+to+"/promote", body)
}

// promoteAll promotes every service running in from to to, in dependency order.
func (c *clientOptions) promoteAll(out io.Writer, from, to string, body func(project string) map[string]any) error {
	var src, dst envStatus
	if err := c.call(http.MethodGet, "/api/v1/environments/"+from, nil, &src); err != nil {
		return err
	}
	var notFound *apiError
	if err := c.call(http.MethodGet, "/api/v1/environments/"+to, nil, &dst); err != nil &&
		!(errors.As(err, &notFound) && notFound.status == http.StatusNotFound) {
		return err
	}
	there := map[string]string{} // service -> digest running in to
	for _, s := range dst.Services {
		there[s.Service] = s.Digest
	}
	order, err := requiresOrder(src.Services)
	if err != nil {
		return badInput(fmt.Errorf("%s: %w", from, err))
	}
	if len(order) == 0 {
		return badInput(fmt.Errorf("%s runs nothing to promote", from))
	}
	var names []string
	for _, s := range order {
		names = append(names, s.Service)
	}
	fmt.Fprintf(out, "promoting from %s to %s, in this order: %s\n", from, to, strings.Join(names, ", "))
	for i, s := range order {
		if s.Digest == there[s.Service] {
			fmt.Fprintf(out, "%s: %s runs %s already\n", s.Service, to, runName(s.Run, s.Tag, s.Release))
			continue
		}
		if err := c.promote(out, s.Project, from, to, body(s.Project)); err != nil {
			if rest := names[i+1:]; len(rest) > 0 {
				fmt.Fprintf(out, "stopped: %s not promoted\n", strings.Join(rest, ", "))
			}
			return err
		}
	}
	return nil
}

// requiresOrder orders an environment's services so that each comes after the ones it
// requires (those outside the set do not count), by name where that leaves a choice.
// A cycle is an error naming it.
func requiresOrder(services []envService) ([]envService, error) {
	byName := map[string]envService{}
	for _, s := range services {
		if s.Project != "" {
			byName[s.Service] = s
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []envService
	var path []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			cycle := append(path[slices.Index(path, n):], n)
			return fmt.Errorf("its services require each other in a cycle (%s): promote them one by one with --without-requires",
				strings.Join(cycle, " -> "))
		}
		state[n] = visiting
		path = append(path, n)
		reqs := slices.Sorted(slices.Values(byName[n].Requires))
		for _, r := range reqs {
			if _, ok := byName[r]; ok {
				if err := visit(r); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		order = append(order, byName[n])
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}
