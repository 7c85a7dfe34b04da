package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

func secretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and remove secrets (values steps and services get, never shown)",
		Long: `Secrets are kept by the server, encrypted, and go only to the steps and services
that name them (secrets: [NAME] in drover.yml), masked in their output. A secret is
kept under its name, a project (or none: global) and an environment (or none); a step
or service gets the most specific one: project and environment, global and
environment, project, global. No command shows a value.

Developers set a project's secrets for no environment or for environments without
approval rules; global secrets and those of environments with approval rules (such as
production) need an admin or a holder of the environment's approval role.`,
	}
	cmd.AddCommand(secretSetCommand(), secretListCommand(), secretRemoveCommand(), secretRekeyCommand())
	return cmd
}

// secretMeta is a secret as the API lists it: never its value.
type secretMeta struct {
	Name    string    `json:"name"`
	Project string    `json:"project"`
	Env     string    `json:"env"`
	Branch  string    `json:"branch"`
	Version int       `json:"version"`
	Actor   string    `json:"actor"`
	Updated time.Time `json:"updated"`
	Warning string    `json:"warning"`
}

// scope says where a secret holds: "global", "project shop, env staging".
func (m secretMeta) scope() string {
	s := "global"
	if m.Project != "" {
		s = "project " + m.Project
	}
	if m.Env != "" {
		s += ", env " + m.Env
	}
	return s
}

func secretSetCommand() *cobra.Command {
	c := &clientOptions{}
	var project, env, branch, fromFile string
	cmd := &cobra.Command{
		Use:   "set NAME [--project P] [--env ENV] [--branch GLOB] [--from-file F]",
		Short: "Set a secret's value (a new version when it has one)",
		Long: `Set a secret. The value comes from --from-file, taken as it is, or from standard input,
read to its end with one trailing newline dropped (at a terminal: type it, then Ctrl-D).
A value is 4 bytes or more (a shorter one could not be masked), at most 64 KiB, without
NUL bytes.

  --project P    for project P only; without it the secret is global (every project)
  --env ENV      for steps and services in environment ENV only; without it, for those
                 in no environment (and in environments without approval rules)
  --branch GLOB  only runs of branches matching GLOB get it (path.Match: * stops at /)`,
		Example: `  drover secret set DB_PASSWORD --project shop --env staging < staging-password.txt
  drover secret set DB_PASSWORD --project shop --env production --from-file prod-password.txt
  drover secret set DEPLOY_KEY --project shop --branch 'release/*'
  drover secret set SENTRY_DSN                  # global; type the value, then Ctrl-D`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := readSecretValue(cmd, fromFile)
			if err != nil {
				return err
			}
			defer clear(value)
			in := map[string]string{"project": project, "env": env, "branch": branch}
			if utf8.Valid(value) {
				in["value"] = string(value)
			} else {
				in["value_base64"] = base64.StdEncoding.EncodeToString(value)
			}
			var out secretMeta
			if err := c.call(http.MethodPut, "/api/v1/secrets/"+url.PathEscape(args[0]), in, &out); err != nil {
				return err
			}
			if out.Warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", out.Warning)
			}
			branches := ""
			if out.Branch != "" {
				branches = fmt.Sprintf(", branches %s", out.Branch)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "set %s (%s%s): version %d\n", out.Name, out.scope(), branches, out.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "the project the secret is for; none: global")
	cmd.Flags().StringVar(&env, "env", "", "the environment the secret is for; none: no environment")
	cmd.Flags().StringVar(&branch, "branch", "", "only runs of branches matching this glob get it")
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file, as it is (default: standard input)")
	c.flags(cmd)
	return cmd
}

// readSecretValue reads a value from the file, or from standard input with one trailing
// newline dropped; at a terminal it says how to end the value.
func readSecretValue(cmd *cobra.Command, fromFile string) ([]byte, error) {
	if fromFile != "" {
		data, err := os.ReadFile(fromFile)
		if err != nil {
			return nil, badInput(fmt.Errorf("--from-file: %w", err))
		}
		return data, nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "type the value, then Ctrl-D")
		}
	}
	data, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the value from standard input: %w", err)
	}
	if d, ok := bytes.CutSuffix(data, []byte("\n")); ok {
		data, _ = bytes.CutSuffix(d, []byte("\r"))
	}
	return data, nil
}

func secretListCommand() *cobra.Command {
	c := &clientOptions{}
	var project string
	var all bool
	cmd := &cobra.Command{
		Use:     "ls [--project P] [--all]",
		Aliases: []string{"list"},
		Short:   "List secrets: name, scope, branch, version, who changed them and when; never values",
		Long: `List the global secrets and those of --project, or every secret with --all. Values
are never shown: the server does not give them out.`,
		Example: "  drover secret ls --project shop\n  drover secret ls --all",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if project != "" {
				q.Set("project", project)
			}
			if all {
				q.Set("all", "1")
			}
			path := "/api/v1/secrets"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var list []secretMeta
			if err := c.call(http.MethodGet, path, nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tBRANCH\tVERSION\tCHANGED-BY\tCHANGED")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.scope(), orDash(m.Branch), strconv.Itoa(m.Version), orDash(m.Actor), when(m.Updated))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "list this project's secrets with the global ones")
	cmd.Flags().BoolVar(&all, "all", false, "list every secret of every project")
	c.flags(cmd)
	return cmd
}

func secretRemoveCommand() *cobra.Command {
	c := &clientOptions{}
	var project, env string
	cmd := &cobra.Command{
		Use:     "rm NAME [--project P] [--env ENV]",
		Aliases: []string{"remove"},
		Short:   "Remove a secret from one scope",
		Long: `Remove the secret NAME of --project (none: the global one) for --env (none: for no
environment). The secret's other scopes stay. Steps and services asking for it from
then on fail, saying what to set, unless another scope has it.`,
		Example: "  drover secret rm DB_PASSWORD --project shop --env staging\n  drover secret rm SENTRY_DSN",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"project": {project}, "env": {env}}
			var out struct {
				Removed string `json:"removed"`
			}
			if err := c.call(http.MethodDelete, "/api/v1/secrets/"+url.PathEscape(args[0])+"?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", out.Removed)
			return nil
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "the project's secret; none: the global one")
	cmd.Flags().StringVar(&env, "env", "", "the environment's secret; none: the one for no environment")
	c.flags(cmd)
	return cmd
}

func secretRekeyCommand() *cobra.Command {
	c := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Re-encrypt every secret under a new key (admin)",
		Long: `Make a new key and re-encrypt every secret's value under it. The server writes the
new key beside the old one (KEYFILE.new), moves every value, then puts the new key in
place; a rekey cut short is finished when the server next starts, and every value can be
read all along. Do it when the key file may have been seen by anyone.`,
		Example: "  drover secret rekey",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Rekeyed int    `json:"rekeyed"`
				KeyID   string `json:"key_id"`
			}
			if err := c.call(http.MethodPost, "/api/v1/secrets/rekey", nil, &out); err != nil {
				return err
			}
			noun := "values"
			if out.Rekeyed == 1 {
				noun = "value"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-encrypted %d %s under key %s\n", out.Rekeyed, noun, out.KeyID)
			return nil
		},
	}
	c.flags(cmd)
	return cmd
}
