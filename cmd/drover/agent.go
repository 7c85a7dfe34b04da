package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// agentJSON is an agent as GET /api/v1/agents shows it.
type agentJSON struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Version  string            `json:"version"`
	Capacity int               `json:"capacity"`
	Drained  bool              `json:"drained"`
	Online   bool              `json:"online"`
	Seen     time.Time         `json:"last_seen"`
	Running  []struct {
		Project string `json:"project"`
		Run     int    `json:"run"`
		Step    string `json:"step"`
		Attempt int    `json:"attempt"`
	} `json:"running"`
}

func agentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run, list and drain build agents: machines that run pipelines' steps",
		Long: `Agents run the compute steps of the server's pipelines (scripts and container steps) on
machines of their own; the server only coordinates. An agent connects out to the server and
never opens a port. Once any agent is registered, every run's compute steps go to agents;
deploys, approvals and environments stay on the server.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(agentRunCommand(), agentListCommand(), agentDrainCommand(true), agentDrainCommand(false))
	return cmd
}

func agentListCommand() *cobra.Command {
	c := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the agents: labels, version, running steps and when each was last seen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var agents []agentJSON
			if err := c.call(http.MethodGet, "/api/v1/agents", nil, &agents); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(agents) == 0 {
				fmt.Fprintln(out, "no agents yet: start one with drover agent run (drover agent run --help)")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tLABELS\tVERSION\tRUNNING\tLAST SEEN")
			for _, a := range agents {
				state := "online"
				switch {
				case !a.Online:
					state = "offline"
				case a.Drained:
					state = "drained"
				}
				var running []string
				for _, r := range a.Running {
					running = append(running, fmt.Sprintf("%s #%d %s", r.Project, r.Run, r.Step))
				}
				run := fmt.Sprintf("%d/%d", len(a.Running), a.Capacity)
				if len(running) > 0 {
					run += " (" + strings.Join(running, ", ") + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, state, labels(a.Labels), a.Version, run, ago(a.Seen))
			}
			return tw.Flush()
		},
	}
	c.flags(cmd)
	return cmd
}

// agentDrainCommand is drover agent drain (drain) or drover agent resume (!drain).
func agentDrainCommand(drain bool) *cobra.Command {
	c := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "drain NAME",
		Short: "Let an agent finish its steps and take no new ones",
		Long: `Let an agent finish the steps it runs and take no new ones, e.g. before its machine is
taken down. drover agent resume NAME gives it work again.`,
		Args: cobra.ExactArgs(1),
	}
	method, done := http.MethodPost, "drained: it finishes its running steps and takes no new ones"
	if !drain {
		cmd.Use, cmd.Short, cmd.Long = "resume NAME", "Give a drained agent work again", ""
		method, done = http.MethodDelete, "resumed: it takes steps again"
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := c.call(method, "/api/v1/agents/"+url.PathEscape(args[0])+"/drain", nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "agent %s %s\n", args[0], done)
		return nil
	}
	c.flags(cmd)
	return cmd
}

// labels shows labels as k=v,k=v, sorted; "-" for none.
func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// ago says how long ago t was, for people.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	}
	return t.Local().Format("2006-01-02 15:04")
}
