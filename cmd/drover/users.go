package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/internal/duration"
)

func userCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the people who hold tokens",
		Long: `A user is a person: runs, approvals, deploys and the audit log name them, and
separation of duties tells them apart. A user holds a role (viewer, developer or admin)
and approval roles; their tokens act with them. Adding users needs an admin token.`,
	}
	cmd.AddCommand(userAddCommand(), userListCommand())
	return cmd
}

func userAddCommand() *cobra.Command {
	c := &clientOptions{}
	var role string
	var approves []string
	cmd := &cobra.Command{
		Use:   "add NAME --role viewer|developer|admin [--approves ROLE,...]",
		Short: "Add a user with a role and approval roles",
		Long: `Add a user. viewer reads and clones; developer also pushes, starts, cancels and
re-runs runs and deploys; admin also adds projects, users and tokens and overrides gates.
--approves gives approval roles (approval: steps and environments asking for them).
A user signs in with a token: drover token create --user NAME.`,
		Example: "  drover user add rita --role developer --approves release-manager\n  drover token create --user rita --label laptop --expires 90d",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return badInput(fmt.Errorf("--role is required: viewer, developer or admin"))
			}
			var out struct {
				Name, Role string
				Approvals  []string
			}
			if err := c.call(http.MethodPost, "/api/v1/users", map[string]any{"name": args[0], "role": role, "approvals": approves}, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added user %s (%s%s); give them a token: drover token create --user %s\n",
				out.Name, out.Role, approvesNote(out.Approvals), out.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, developer or admin (required)")
	cmd.Flags().StringSliceVar(&approves, "approves", nil, "approval roles the user holds, e.g. release-manager")
	c.flags(cmd)
	return cmd
}

// approvesNote is ", approves A,B", or "" for no approval roles.
func approvesNote(groups []string) string {
	if len(groups) == 0 {
		return ""
	}
	return ", approves " + strings.Join(groups, ",")
}

func userListCommand() *cobra.Command {
	c := &clientOptions{}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List users with their roles",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var users []struct {
				Name, Role string
				Approvals  []string
				Created    time.Time
			}
			if err := c.call(http.MethodGet, "/api/v1/users", nil, &users); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tAPPROVES\tCREATED")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, orDash(strings.Join(u.Approvals, ",")), when(u.Created))
			}
			return tw.Flush()
		},
	}
	c.flags(cmd)
	return cmd
}

// when is t in local time to the minute, or "-" when zero.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `Tokens sign people and machines in: the API takes them as bearer tokens, git and the
registry as the password of HTTP basic auth, the web UI at /login. A token is shown once
when it is made; the server keeps only its hash.`,
	}
	cmd.AddCommand(tokenCreateCommand(), tokenListCommand(), tokenRevokeCommand())
	return cmd
}

// tokenCreated is the server's answer to POST /api/v1/tokens.
type tokenCreated struct {
	ID                        int64
	Name, User, Machine, Role string
	Repository, Label, Token  string
	Expires                   time.Time
}

func tokenCreateCommand() *cobra.Command {
	c := &clientOptions{}
	var user, machine, repository, label, role, name string
	var approves []string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "create (--user NAME | --machine agent|proxy|pull | --role ROLE) [--label L] [--expires D]",
		Short: "Create a token for a user or a machine",
		Long: `Create a token and print it (once: the server keeps only its hash). Needs an admin token.

  --user NAME             a token of the user NAME (drover user add), with their role
  --machine agent|proxy   a machine token that can do one job: agent takes and reports
                          work (drover agent), proxy reads the route table
  --machine pull --repository REPO
                          a short-lived registry credential that pulls REPO only
                          (default --expires 1h, at most 24h)
  --role ROLE [--approves R,...] [--name N]
                          as before users existed: a new user of its own, called N
                          (default the role; N-2, N-3, ... when taken), with a token

--expires takes a duration such as 90d, 720h or 1d12h; without it a token does not
expire (a pull token's lives 1h). Only the token goes to standard output.`,
		Example: `  drover token create --user rita --label laptop --expires 90d
  drover token create --machine proxy --label edge-1
  drover token create --machine pull --repository shop/image --expires 2h
  TOKEN=$(drover token create --role developer --name ci-bot)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			legacy := f.Changed("role") || f.Changed("approves") || f.Changed("name")
			switch {
			case user != "" && machine != "":
				return badInput(fmt.Errorf("--user and --machine exclude each other: a token belongs to a person or to a machine"))
			case (user != "" || machine != "") && legacy:
				return badInput(fmt.Errorf("--role, --approves and --name make a user of their own; with --user the token has the user's role, with --machine none"))
			case machine == "pull" && repository == "":
				return badInput(fmt.Errorf("a pull token reads one repository: add --repository REPO"))
			case repository != "" && machine != "pull":
				return badInput(fmt.Errorf("--repository scopes pull tokens only: add --machine pull"))
			case f.Changed("expires") && expires <= 0:
				return badInput(fmt.Errorf("--expires must be longer than 0; leave it out for a token that does not expire"))
			}
			in := map[string]any{"user": user, "machine": machine, "repository": repository, "label": label}
			if legacy || user == "" && machine == "" {
				in["role"], in["name"], in["approvals"] = role, name, approves
			}
			if f.Changed("expires") {
				in["expires"] = duration.Format(expires)
			}
			var out tokenCreated
			if err := c.call(http.MethodPost, "/api/v1/tokens", in, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %d %s; shown this once: keep it safe (revoke it with drover token revoke %d)\n",
				out.ID, describeCreated(out), out.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "the user the token belongs to")
	f.StringVar(&machine, "machine", "", "a machine token instead: agent, proxy or pull")
	f.StringVar(&repository, "repository", "", "pull tokens: the one repository they read, e.g. shop/image")
	f.StringVar(&label, "label", "", "what the token is for, e.g. laptop or ci")
	f.Var(duration.Flag(&expires, 0), "expires", "refuse the token after this long, e.g. 90d (default: never; pull tokens 1h, at most 24h)")
	f.StringVar(&role, "role", "", "without --user: make a user of its own with this role (viewer, developer or admin; default developer)")
	f.StringSliceVar(&approves, "approves", nil, "with --role: approval roles of that user, e.g. release-manager")
	f.StringVar(&name, "name", "", "with --role: that user's name (default: the role)")
	c.flags(cmd)
	return cmd
}

// describeCreated says whose a new token is.
func describeCreated(t tokenCreated) string {
	var b strings.Builder
	switch {
	case t.Machine == "pull":
		fmt.Fprintf(&b, "for machine pull of %s", t.Repository)
	case t.Machine != "":
		fmt.Fprintf(&b, "for machine %s", t.Machine)
	default:
		fmt.Fprintf(&b, "for user %s (%s)", t.User, t.Role)
	}
	if t.Label != "" {
		fmt.Fprintf(&b, ", label %q", t.Label)
	}
	if t.Expires.IsZero() {
		b.WriteString(", does not expire")
	} else {
		fmt.Fprintf(&b, ", expires %s", t.Expires.Local().Format("2006-01-02 15:04 MST"))
	}
	return b.String()
}

// tokenListed is one token of GET /api/v1/tokens: never its secret.
type tokenListed struct {
	ID                                     int64
	User, Machine, Repository, Label, Role string
	State                                  string
	Created                                time.Time
	LastUsed                               time.Time `json:"last_used"`
	Expires, Revoked                       time.Time
}

func tokenListCommand() *cobra.Command {
	c := &clientOptions{}
	var all bool
	var user string
	cmd := &cobra.Command{
		Use:     "ls [--all] [--user NAME]",
		Aliases: []string{"list"},
		Short:   "List tokens: yours, or every one with an admin token",
		Long: `List tokens with their ID, user, label, role, when they were made and last used
(to the minute or so) and when they expire. The secrets are never shown: the server keeps
only their hashes. An admin sees every token (--user NAME: one user's), everyone else
their own. Revoked and expired tokens are left out unless --all.`,
		Example: "  drover token ls\n  drover token ls --all --user rita",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/tokens"
			if user != "" {
				path += "?user=" + url.QueryEscape(user)
			}
			var tokens []tokenListed
			if err := c.call(http.MethodGet, path, nil, &tokens); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			head := "ID\tUSER\tLABEL\tROLE\tCREATED\tLAST USED\tEXPIRES"
			if all {
				head += "\tSTATE"
			}
			fmt.Fprintln(tw, head)
			for _, t := range tokens {
				if !all && t.State != "active" {
					continue
				}
				who, role := t.User, t.Role
				if t.Machine != "" {
					who, role = "(machine)", strings.TrimSpace(t.Machine+" "+t.Repository)
				}
				expires := "never"
				if !t.Expires.IsZero() {
					expires = when(t.Expires)
				}
				line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s", t.ID, who, orDash(t.Label), role, when(t.Created), when(t.LastUsed), expires)
				if all {
					line += "\t" + t.State
				}
				fmt.Fprintln(tw, line)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "also list revoked and expired tokens")
	cmd.Flags().StringVar(&user, "user", "", "admins: only this user's tokens")
	c.flags(cmd)
	return cmd
}

func tokenRevokeCommand() *cobra.Command {
	c := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: refused at once on the API, git, the registry and the web UI",
		Long: `Revoke a token by the ID drover token ls shows. The next request it makes is refused,
whichever door it comes through; a web UI session signed in with it ends. An admin
revokes any token, everyone else their own. Revoking is written to the audit log.`,
		Example: "  drover token ls\n  drover token revoke 7",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out tokenListed
			if err := c.call(http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			who := out.User
			if out.Machine != "" {
				who = "machine " + out.Machine
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %d of %s: refused from now on\n", out.ID, who)
			return nil
		},
	}
	c.flags(cmd)
	return cmd
}
