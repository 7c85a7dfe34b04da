package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/pipeline"
)

// deployAnswer is the server's answer to a deploy or a rollback.
type deployAnswer struct {
	Deployment *struct {
		ID         int64  `json:"id"`
		Service    string `json:"service"`
		Tag        string `json:"tag"`
		Digest     string `json:"digest"`
		Status     string `json:"status"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"deployment"`
	Log   []string `json:"log"`
	Error string   `json:"error"`
}

// deployCall posts a deploy, rollback or promotion, saying what (doing, like "deploying
// web to staging"), and prints its log; failures exit 1.
func (c *clientOptions) deployCall(out io.Writer, doing, path string, in any) error {
	fmt.Fprintf(out, "%s ...\n", doing)
	var ans deployAnswer
	err := c.callRaw(http.MethodPost, path, in, func(status int, data []byte) error {
		if jerr := json.Unmarshal(data, &ans); jerr != nil || (ans.Deployment == nil && ans.Error == "" && status >= 300) {
			return fmt.Errorf("server: HTTP %d: %s", status, strings.TrimSpace(string(data)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range ans.Log {
		fmt.Fprintln(out, "  "+l)
	}
	if ans.Error != "" {
		if ans.Deployment == nil {
			return badInput(fmt.Errorf("%s", ans.Error))
		}
		return &exitError{code: 1, err: fmt.Errorf("deployment %d failed: %s", ans.Deployment.ID, ans.Error)}
	}
	d := ans.Deployment
	fmt.Fprintf(out, "deployment %d: %s %s (%s) is live after %s\n", d.ID, d.Service, d.Tag, d.Digest,
		(time.Duration(d.DurationMS) * time.Millisecond).Round(time.Millisecond))
	return nil
}

// forceUsage is the help of --force, on every command that deploys a release a person
// names.
const forceUsage = "admins only: go ahead although the release's run has not passed (failed, or waits at a gate); the audit log says so"

func deployCommand() *cobra.Command {
	c := &clientOptions{}
	var env, strategy string
	var force, withoutRequires bool
	cmd := &cobra.Command{
		Use:   "deploy PROJECT[:REF] --env ENV",
		Short: "Run a release of a project in an environment",
		Long: `Deploy a release: the server unpacks it, starts the service's instances as its drover.yml
service: section says, waits for their health checks, switches the proxy to them and stops
the old ones. A release whose instances never become healthy never gets traffic and the
command exits 1 with their last output.

REF is a release tag (r12), a run number, a commit or a digest; without it, the newest
release. The environment is created on first use.

Only a release whose run passed goes out: one whose run failed, or still waits at an
approval (or runs), is refused, unless an admin adds --force. An environment with an
approval role takes deploys only from its holders and admins; production asks for
release-manager unless an environments.yml declares it otherwise.

A service whose service: section requires others is refused while one of them runs nowhere
in the environment (its calls to them would fail), unless --without-requires is given.`,
		Example: "  drover deploy shop --env staging\n  drover deploy shop:r12 --env production --strategy rolling",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return badInput(fmt.Errorf("--env is required: the environment to deploy to"))
			}
			project, ref, _ := strings.Cut(args[0], ":")
			return c.deployCall(cmd.OutOrStdout(), fmt.Sprintf("deploying %s to %s", args[0], env), "/api/v1/environments/"+env+"/deploy",
				map[string]any{"project": project, "ref": ref, "strategy": strategy, "force": force, "without_requires": withoutRequires})
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment to deploy to, e.g. staging")
	cmd.Flags().StringVar(&strategy, "strategy", "", "blue-green or rolling (default: the environment's)")
	cmd.Flags().BoolVar(&force, "force", false, forceUsage)
	cmd.Flags().BoolVar(&withoutRequires, "without-requires", false, withoutRequiresUsage)
	c.flags(cmd)
	return cmd
}

func rollbackCommand() *cobra.Command {
	c := &clientOptions{}
	var env string
	var force bool
	cmd := &cobra.Command{
		Use:   "rollback PROJECT --env ENV",
		Short: "Return a project's service in an environment to the release it ran before",
		Long: `Deploy again the release the service ran before its current one: the same digest, nothing
rebuilt. A release whose run did not pass (a deploy: step put it there before its run
failed, say) is not gone back to, unless an admin adds --force.`,
		Example: "  drover rollback shop --env production",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return badInput(fmt.Errorf("--env is required"))
			}
			return c.deployCall(cmd.OutOrStdout(), fmt.Sprintf("rolling %s in %s back", args[0], env), "/api/v1/environments/"+env+"/rollback",
				map[string]any{"project": args[0], "force": force})
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment, e.g. production")
	cmd.Flags().BoolVar(&force, "force", false, forceUsage)
	c.flags(cmd)
	return cmd
}

// envStatus is an environment as GET /api/v1/environments/{env} answers.
type envStatus struct {
	Name     string       `json:"name"`
	Strategy string       `json:"strategy"`
	Services []envService `json:"services"`
	Scales   []struct {
		Project, Actor string
		Replicas       int
	} `json:"scales"`
	Deployments []struct {
		ID                                             int64
		Service, Tag, Status, Reason, Trigger, Release string
		Run                                            int
		Created                                        time.Time
	} `json:"deployments"`
}

// envService is what runs of a service in an environment, as GET /api/v1/environments/ENV
// says.
type envService struct {
	Service, Project, Tag, Digest, URL, Release string
	Run                                         int
	Requires                                    []string
	Instances                                   []instanceJSON
}

// instanceJSON is one instance of a service as the environment API shows it.
type instanceJSON struct {
	Name, Addr, Health string
	Node               string // the cluster node it runs on; "" on the server's machine
	Pid, Restarts      int
}

func envCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "Show environments: what runs where"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List environments and the release each service runs",
		Args:  cobra.NoArgs,
	}
	lc := &clientOptions{}
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		var envs []envStatus
		if err := lc.call(http.MethodGet, "/api/v1/environments", nil, &envs); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if len(envs) == 0 {
			fmt.Fprintln(out, "no environments yet: drover deploy PROJECT --env staging creates one")
			return nil
		}
		fmt.Fprintf(out, "%-14s %-12s %-16s %-14s %s\n", "ENV", "STRATEGY", "SERVICE", "RUN", "INSTANCES")
		for _, e := range envs {
			if len(e.Services) == 0 {
				fmt.Fprintf(out, "%-14s %-12s %-16s %-14s %s\n", e.Name, e.Strategy, "-", "-", "-")
			}
			for _, s := range e.Services {
				fmt.Fprintf(out, "%-14s %-12s %-16s %-14s %s\n", e.Name, e.Strategy, s.Service, runName(s.Run, s.Tag, s.Release), healthSummary(s.Instances))
			}
		}
		return nil
	}
	lc.flags(ls)
	show := &cobra.Command{
		Use:     "show ENV",
		Short:   "Show an environment: services, releases, instances, health and deploy history",
		Example: "  drover env show staging",
		Args:    cobra.ExactArgs(1),
	}
	sc := &clientOptions{}
	show.RunE = func(cmd *cobra.Command, args []string) error {
		var e envStatus
		if err := sc.call(http.MethodGet, "/api/v1/environments/"+args[0], nil, &e); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "environment %s (%s)\n", e.Name, e.Strategy)
		for _, s := range e.Services {
			fmt.Fprintf(out, "\n%s  %s %s  %s\n  reach it at %s\n", s.Service, s.Project, runName(s.Run, s.Tag, s.Release), s.Digest, s.URL)
			for _, i := range s.Instances {
				if i.Node != "" { // a task on a cluster: where it runs, not a local pid
					fmt.Fprintf(out, "  %-40s %-10s %-21s node %s\n", i.Name, i.Health, i.Addr, i.Node)
					continue
				}
				fmt.Fprintf(out, "  %-40s %-10s %-21s pid %-7d restarts %d\n", i.Name, i.Health, i.Addr, i.Pid, i.Restarts)
			}
		}
		for _, sc := range e.Scales {
			fmt.Fprintf(out, "\n%s is scaled to %d by hand (by %s; drover scale %s --env %s --reset undoes it)\n",
				sc.Project, sc.Replicas, sc.Actor, sc.Project, e.Name)
		}
		fmt.Fprintf(out, "\nhistory:\n")
		for _, d := range e.Deployments {
			fmt.Fprintf(out, "  %-5s %s  %-12s %-14s %-11s by %s %s\n", fmt.Sprintf("d%d", d.ID), d.Created.Local().Format("2006-01-02 15:04:05"),
				d.Service, runName(d.Run, d.Tag, d.Release), d.Status, d.Trigger, firstLine(d.Reason))
		}
		return nil
	}
	sc.flags(show)
	cmd.AddCommand(ls, show, envFileCommand("plan"), envFileCommand("apply"), envUpCommand(), envDownCommand(), envStopCommand())
	return cmd
}

// envFileCommand is env plan or env apply: send an environments.yml to the server.
func envFileCommand(verb string) *cobra.Command {
	c := &clientOptions{}
	short := "Show what applying an environments.yml would change"
	long := `Compare FILE (default environments.yml) with the environments the server has and print the
plan: environments created (+), changed (~) or deleted (-, only ones a file declared
before), releases tracking environments would get (>), services whose replicas change.
Nothing changes.`
	if verb == "apply" {
		short = "Apply an environments.yml: create, change and delete environments as it says"
		long = `Print the plan of FILE (see drover env plan) and carry it out. Needs an admin token. In a
project named system, a passing run applies its environments.yml the same way.`
	}
	cmd := &cobra.Command{
		Use:     verb + " [FILE]",
		Short:   short,
		Long:    long,
		Example: "  drover env " + verb + " environments.yml",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "environments.yml"
			if len(args) == 1 {
				file = args[0]
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return badInput(err)
			}
			if _, err := pipeline.ParseEnvironments(file, data); err != nil {
				return badInput(err) // FILE:LINE:COL before anything is sent
			}
			var ans struct {
				Changes []string `json:"changes"`
				Log     []string `json:"log"`
				Error   string   `json:"error"`
			}
			err = c.callBody(http.MethodPost, "/api/v1/environments/"+verb, data, &ans)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			lines := ans.Changes
			if verb == "apply" {
				lines = ans.Log
			}
			if len(ans.Changes) == 0 {
				fmt.Fprintln(out, "environments are as declared: nothing to change")
			}
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			if ans.Error != "" {
				return &exitError{code: 1, err: fmt.Errorf("apply: %s", ans.Error)}
			}
			return nil
		},
	}
	c.flags(cmd)
	return cmd
}

// runName names what a deployment runs as people see it everywhere: the run, "#12",
// and "#12 (r12)" once it is a release, whatever it was deployed as.
func runName(run int, tag, release string) string {
	if run == 0 {
		return tag
	}
	if release != "" {
		return fmt.Sprintf("#%d (%s)", run, release)
	}
	return fmt.Sprintf("#%d", run)
}

// healthSummary is "2 healthy" or "1 healthy, 1 starting".
func healthSummary(insts []instanceJSON) string {
	if len(insts) == 0 {
		return "none"
	}
	counts := map[string]int{}
	var order []string
	for _, i := range insts {
		if counts[i.Health] == 0 {
			order = append(order, i.Health)
		}
		counts[i.Health]++
	}
	var parts []string
	for _, h := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[h], h))
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func auditCommand() *cobra.Command {
	c := &clientOptions{}
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: every deploy, promotion, rollback, approval, user, token and secret change, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var entries []struct {
				Time                                                         time.Time
				Actor, Action, Environment, Project, Digest, Result, Message string
				Run                                                          int
			}
			if err := c.call(http.MethodGet, fmt.Sprintf("/api/v1/audit?limit=%d", limit), nil, &entries); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, e := range entries {
				what := e.Project
				if e.Run > 0 { // not for environments, users and tokens
					what += fmt.Sprintf(" run #%d", e.Run)
				}
				fmt.Fprintf(out, "%s  %-12s %-9s %-12s %s %s  %s  %s\n", e.Time.Local().Format("2006-01-02 15:04:05"),
					e.Actor, e.Action, e.Environment, what, short12(e.Digest), e.Result, firstLine(e.Message))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "how many entries")
	c.flags(cmd)
	return cmd
}

// short12 is a digest's first 12 hex digits.
func short12(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func approveCommand() *cobra.Command {
	c := &clientOptions{}
	var reject bool
	var message, step string
	cmd := &cobra.Command{
		Use:   "approve PROJECT RUN [--reject] [-m MESSAGE]",
		Short: "Approve (or reject) the approval a waiting run asks for",
		Long: `Decide an approval: step. The run resumes at once: approved, it goes on from the step;
rejected, the step fails with your message. You need a token with the approval role the
step names (drover user add NAME --approves ROLE) or an admin token.`,
		Example: "  drover approve shop 12 -m \"checked staging\"\n  drover approve shop 12 --reject -m \"wait for the fix\"",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct{ Step, Decision, By string }
			err := c.call(http.MethodPost, "/api/v1/projects/"+args[0]+"/runs/"+args[1]+"/approve",
				map[string]any{"step": step, "reject": reject, "message": message}, &out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s #%s: step %s %s by %s; the run goes on\n", args[0], args[1], out.Step, out.Decision, out.By)
			return nil
		},
	}
	cmd.Flags().BoolVar(&reject, "reject", false, "reject instead of approve")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why, for the run and the audit log")
	cmd.Flags().StringVar(&step, "step", "", "the approval step, when the run waits for several")
	c.flags(cmd)
	return cmd
}

func envUpCommand() *cobra.Command {
	c := &clientOptions{}
	var from string
	var with []string
	var idle time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "up NAME [--from ENV] [--with PROJECT:REF]... [--idle D]",
		Short: "Start a developer environment: a complete copy of another, with your releases in it",
		Long: `Start environment NAME with every service of --from (default staging) at its live release,
and each --with PROJECT:REF (a release tag, run number, commit or digest; a branch's run, say)
in place of that project's service. It is stopped by drover env down NAME, or after --idle
without a request. A --with release whose run has not passed (it failed, or still waits at
an approval) is refused, unless an admin adds --force.`,
		Example: "  drover env up alice --with shop:57 --idle 2h\n  curl http://shop.alice.localhost:8000/",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ans struct {
				Log   []string `json:"log"`
				Error string   `json:"error"`
			}
			in := map[string]any{"from": from, "with": with, "idle": duration.Format(idle), "force": force}
			err := c.callRaw(http.MethodPost, "/api/v1/environments/"+args[0]+"/up", in, func(status int, data []byte) error {
				if jerr := json.Unmarshal(data, &ans); jerr != nil {
					return fmt.Errorf("server: HTTP %d: %s", status, strings.TrimSpace(string(data)))
				}
				if status == http.StatusBadRequest || status == http.StatusConflict {
					return badInput(fmt.Errorf("%s", ans.Error))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, l := range ans.Log {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			if ans.Error != "" {
				return &exitError{code: 1, err: fmt.Errorf("env up %s: %s", args[0], ans.Error)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "staging", "environment to copy; \"\" for none")
	cmd.Flags().StringSliceVar(&with, "with", nil, "PROJECT:REF to run in place of that project's service (repeatable)")
	cmd.Flags().Var(duration.Flag(&idle, 0), "idle", "stop the environment after this long without a request (0: never)")
	cmd.Flags().BoolVar(&force, "force", false, forceUsage)
	c.flags(cmd)
	return cmd
}

func envDownCommand() *cobra.Command {
	c := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "down NAME",
		Short: "Stop a developer environment and delete it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.call(http.MethodDelete, "/api/v1/environments/"+args[0], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "environment %s is down\n", args[0])
			return nil
		},
	}
	c.flags(cmd)
	return cmd
}
