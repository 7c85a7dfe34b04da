package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/internal/duration"
)

// clientOptions are the flags of commands that talk to a server.
type clientOptions struct {
	server string
	token  string
}

func (c *clientOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.server, "server", defaultServer(), "Drover server URL (env DROVER_SERVER)")
	cmd.Flags().StringVar(&c.token, "token", os.Getenv("DROVER_TOKEN"), "API token (env DROVER_TOKEN; default: the admin-token file of ./drover-data)")
}

// defaultServer is the server commands talk to without --server: DROVER_SERVER, else
// drover server's default address.
func defaultServer() string {
	if server := os.Getenv("DROVER_SERVER"); server != "" {
		return server
	}
	return "http://127.0.0.1:8080"
}

// bearer returns the token to send: --token, or the admin token of ./drover-data.
func (c *clientOptions) bearer() (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	data, err := os.ReadFile(filepath.Join("drover-data", "admin-token"))
	if err != nil {
		return "", badInput(fmt.Errorf("no token: pass --token, set DROVER_TOKEN, or run this where ./drover-data/admin-token is"))
	}
	return strings.TrimSpace(string(data)), nil
}

// call sends a JSON request to the server's API and decodes the JSON answer into out.
func (c *clientOptions) call(method, path string, in, out any) error {
	return c.callRaw(method, path, in, func(status int, data []byte) error {
		if status >= 300 {
			return answerError(status, data)
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	})
}

// callBody posts a raw body (an environments.yml) and decodes the JSON answer into out,
// also from a 422, whose body says what failed.
func (c *clientOptions) callBody(method, path string, body []byte, out any) error {
	return c.send(method, path, bytes.NewReader(body), "application/yaml", func(status int, data []byte) error {
		if status < 300 || status == http.StatusUnprocessableEntity {
			return json.Unmarshal(data, out)
		}
		return answerError(status, data)
	})
}

// apiError is the server's refusal of a request: its HTTP status and what it said.
type apiError struct {
	status int
	msg    string
}

// Error is what the server said, as a person reads it: the server's words for a
// refusal (4xx), with the status when it is about the token (401, 403: a proxy in
// between may be the one refusing), and for a failure of the server itself (5xx).
func (e *apiError) Error() string {
	msg := serverText(e.msg)
	switch {
	case e.status >= 500:
		return fmt.Sprintf("the server failed (HTTP %d): %s", e.status, msg)
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden:
		return fmt.Sprintf("%s (HTTP %d)", msg, e.status)
	}
	return msg
}

// answerError turns an answer of status >= 300 into an apiError.
func answerError(status int, data []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("HTTP %d: %s", status, bytes.TrimSpace(data))
		if status < 500 {
			e.Error = "the server answered " + e.Error
		}
	}
	return &apiError{status: status, msg: e.Error}
}

// storeNotFound matches the store's words for a missing thing, like
// `store: environment "prod": not found` or `store: update project "shop": not found`.
var storeNotFound = regexp.MustCompile(`^store: (?:[a-z ]+: )?(?:[a-z]+ )?(environment|project|user) ("[^"]*"): not found$`)

// notFoundHints name the command that lists the things of a kind.
var notFoundHints = map[string]string{
	"environment": " (drover env ls lists them)",
	"user":        " (drover user ls lists them)",
}

// serverText rewrites what a server said into words for the person at the terminal: the
// names of the server's internals ("store: ", a sentinel error's text after the message)
// go, and a missing environment, project or user is said plainly with where to look.
func serverText(msg string) string {
	if m := storeNotFound.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s %s not found%s", m[1], m[2], notFoundHints[m[1]])
	}
	store := strings.HasPrefix(msg, "store: ")
	msg = strings.TrimPrefix(msg, "store: ")
	switch {
	case store && strings.HasSuffix(msg, ": not found"):
		msg = strings.TrimSuffix(msg, ": not found") + " not found"
	case strings.HasSuffix(msg, ": not found"), strings.HasSuffix(msg, ": already exists"), strings.HasSuffix(msg, ": bad deploy request"):
		// The server's own sentence, which says it already, with the sentinel's text appended.
		msg = msg[:strings.LastIndex(msg, ": ")]
	}
	return msg
}

// callRaw sends a JSON request to the server's API and hands the answer's status and
// body to answer. Deploys wait for health checks, so the timeout is generous.
func (c *clientOptions) callRaw(method, path string, in any, answer func(status int, data []byte) error) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	return c.send(method, path, body, "application/json", answer)
}

// send sends a request with the client's token and hands the answer to answer.
func (c *clientOptions) send(method, path string, body io.Reader, contentType string, answer func(status int, data []byte) error) error {
	token, err := c.bearer()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(c.server, "/")+path, body)
	if err != nil {
		return badInput(fmt.Errorf("--server %s: %w", c.server, err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reach the server at %s (is 'drover server' running?): %w", c.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	if err != nil {
		return err
	}
	return answer(resp.StatusCode, data)
}

func projectCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "project", Short: "Manage projects"}
	c := &clientOptions{}
	var url, secret string
	var poll time.Duration
	add := &cobra.Command{
		Use:   "add NAME --url URL",
		Short: "Follow an external git repository: poll it and accept its push webhooks",
		Long: `Follow an external repository. The server fetches it now, then every --poll, and on
each push webhook at /hooks/NAME (GitHub, Gitea/Forgejo or GitLab format, checked
against --webhook-secret). Hosted projects need no command: git push creates them.`,
		Example: "  drover project add shop --url https://git.example.com/team/shop.git --poll 1m --webhook-secret s3cret",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				return badInput(fmt.Errorf("--url is required"))
			}
			in := map[string]string{"name": args[0], "url": url, "webhook_secret": secret}
			if poll > 0 {
				in["poll_interval"] = duration.Format(poll)
			}
			if err := c.call("POST", "/api/v1/projects", in, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "following %s as project %s\n", url, args[0])
			return nil
		},
	}
	add.Flags().StringVar(&url, "url", "", "clone URL of the repository")
	add.Flags().Var(duration.Flag(&poll, time.Minute), "poll", "how often to poll; 0 for webhooks only")
	add.Flags().StringVar(&secret, "webhook-secret", "", "secret the webhooks are signed with; empty refuses webhooks")
	c.flags(add)
	cmd.AddCommand(add, projectSetCommand())
	return cmd
}

func projectSetCommand() *cobra.Command {
	c := &clientOptions{}
	var keepRuns int
	var keepFor time.Duration
	var defaultBranch string
	var branchSecrets bool
	set := &cobra.Command{
		Use:   "set NAME [--keep-runs N] [--keep-for D] [--default-branch B] [--branch-secrets=true|false]",
		Short: "Change a project's retention, default branch and who gets its secrets",
		Long: `Change a project's settings (needs an admin).

Retention: garbage collection keeps the artifacts of the project's last --keep-runs runs,
every artifact younger than --keep-for, and every release that is or was deployed; the
rest goes. 0 means the server's default (drover server --keep-runs and --keep-for).

Secrets: --default-branch is the branch whose runs get the secrets of environments with
approval rules (the server takes a hosted project's first pushed branch, or a followed
repository's default, until told otherwise). --branch-secrets lets runs of a followed
repository's other branches have secrets; without it they get none.`,
		Example: `  drover project set shop --keep-runs 50 --keep-for 2160h
  drover project set shop --default-branch main
  drover project set shop --branch-secrets=true`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := map[string]any{}
			if cmd.Flags().Changed("keep-runs") {
				in["keep_runs"] = keepRuns
			}
			if cmd.Flags().Changed("keep-for") {
				in["keep_for"] = duration.Format(keepFor)
			}
			if cmd.Flags().Changed("default-branch") {
				in["default_branch"] = defaultBranch
			}
			if cmd.Flags().Changed("branch-secrets") {
				in["branch_secrets"] = branchSecrets
			}
			if len(in) == 0 {
				return badInput(fmt.Errorf("nothing to change: pass --keep-runs, --keep-for, --default-branch or --branch-secrets"))
			}
			var out struct {
				KeepRuns      int    `json:"keep_runs"`
				KeepFor       string `json:"keep_for"`
				DefaultBranch string `json:"default_branch"`
				BranchSecrets bool   `json:"branch_secrets"`
			}
			if err := c.call("PATCH", "/api/v1/projects/"+args[0], in, &out); err != nil {
				return err
			}
			if cmd.Flags().Changed("keep-runs") || cmd.Flags().Changed("keep-for") {
				fmt.Fprintf(cmd.OutOrStdout(), "%s keeps the last %s runs and everything younger than %s\n", args[0],
					orDefault(fmt.Sprint(out.KeepRuns), "0"), orDefault(out.KeepFor, ""))
			}
			if cmd.Flags().Changed("default-branch") || cmd.Flags().Changed("branch-secrets") {
				others := "other branches of a followed repository get no secrets"
				if out.BranchSecrets {
					others = "other branches of a followed repository get secrets too"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: default branch %s; %s\n", args[0], orDash(out.DefaultBranch), others)
			}
			return nil
		},
	}
	set.Flags().IntVar(&keepRuns, "keep-runs", 0, "keep the artifacts of the last N runs; 0 for the server's default")
	set.Flags().Var(duration.Flag(&keepFor, 0), "keep-for", "keep artifacts younger than this; 0 for the server's default")
	set.Flags().StringVar(&defaultBranch, "default-branch", "", "the branch whose runs get secrets of environments with approval rules")
	set.Flags().BoolVar(&branchSecrets, "branch-secrets", false, "let runs of a followed repository's other branches have secrets")
	c.flags(set)
	return set
}

// orDefault is v, or "the server's default" when v is empty or zero.
func orDefault(v, zero string) string {
	if v == zero {
		return "(the server's default)"
	}
	return v
}
