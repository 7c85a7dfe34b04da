package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/drover-cd/drover/internal/words"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/release"
)

func upCommand() *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "up [FOLDER...]",
		Short: "Start a server and deliver a system of projects from folders (default: the example shop)",
		Long: `Start the server (as drover server does, in --data), make every folder with a drover.yml a
hosted project (its content as the first commit), run their pipelines and show their
progress until the system is live, then print where to look and how to approve the
production release. A folder without a drover.yml stands for its subfolders; one called
system holds environments.yml and goes first; services whose service.requires name other
projects go after those reached staging. Running it again reuses --data: a folder whose
content differs from its project's main branch (you edited it) is pushed as a new commit
on top, the others are left as they are. Ctrl-C stops everything it started, services
included (the next drover up starts them again), unless --keep-services: then the services
go on serving, as they do when a drover server stops, and the next start adopts them.`,
		Example: "  drover up\n  drover up examples/shop --data /tmp/shop",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{filepath.Join("examples", "shop")}
			}
			return o.up(cmd, args)
		},
	}
	o.flags(cmd)
	o.keepServices = false
	cmd.Flags().BoolVar(&o.keepServices, "keep-services", false,
		"Ctrl-C stops the server only: the deployed services go on serving, as after drover server stops")
	return cmd
}

// upProject is a folder drover up delivers.
type upProject struct {
	name, dir string
	requires  []string
	pipeline  *pipeline.Pipeline
}

// findProjects lists the projects in folders: each folder with a drover.yml, else each of
// its subfolders that has one.
func findProjects(folders []string) ([]upProject, error) {
	var out []upProject
	add := func(dir string) error {
		data, err := os.ReadFile(filepath.Join(dir, "drover.yml"))
		if err != nil {
			return err
		}
		p, err := pipeline.Parse(filepath.Join(dir, "drover.yml"), data)
		if err != nil {
			return badInput(err)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return badInput(err)
		}
		// The server checks the name too; saying it here stops drover up before it pushes anything.
		up := upProject{name: filepath.Base(abs), dir: dir, pipeline: p}
		if err := release.CheckProjectName(up.name); err != nil {
			return badInput(fmt.Errorf("%s: the folder's name is the project's: %w", dir, err))
		}
		if p.Service != nil {
			up.requires = p.Service.Requires
		}
		out = append(out, up)
		return nil
	}
	for _, f := range folders {
		if _, err := os.Stat(filepath.Join(f, "drover.yml")); err == nil {
			if err := add(f); err != nil {
				return nil, err
			}
			continue
		}
		ents, err := os.ReadDir(f)
		if err != nil {
			return nil, badInput(fmt.Errorf("%s: %w (give folders with a drover.yml, or their parent)", f, err))
		}
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(f, e.Name(), "drover.yml")); e.IsDir() && err == nil {
				if err := add(filepath.Join(f, e.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, badInput(fmt.Errorf("no drover.yml in %s or its subfolders", strings.Join(folders, ", ")))
	}
	return out, nil
}

// waves orders projects for pushing: system first, then the ones requiring none of the
// others, then the rest.
func waves(projects []upProject) [][]upProject {
	names := map[string]bool{}
	for _, p := range projects {
		names[p.name] = true
	}
	var system, first, later []upProject
	for _, p := range projects {
		switch {
		case p.name == SystemProject:
			system = append(system, p)
		case slices.ContainsFunc(p.requires, func(r string) bool { return names[r] }):
			later = append(later, p)
		default:
			first = append(first, p)
		}
	}
	var out [][]upProject
	for _, w := range [][]upProject{system, first, later} {
		if len(w) > 0 {
			out = append(out, w)
		}
	}
	return out
}

func (o *serverOptions) up(cmd *cobra.Command, folders []string) error {
	projects, err := findProjects(folders)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, statErr := os.Stat(o.data)
	fresh := os.IsNotExist(statErr) // made here: removed again if the server cannot start
	if err := os.MkdirAll(o.data, 0o711); err != nil {
		return badInput(fmt.Errorf("--data %s: %w", o.data, err))
	}
	logFile, err := os.OpenFile(filepath.Join(o.data, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	readyc, errc := make(chan serverInfo, 1), make(chan error, 1)
	go func() { errc <- o.serve(ctx, log, stop, func(i serverInfo) { readyc <- i }) }()
	var info serverInfo
	select {
	case info = <-readyc:
	case err := <-errc:
		if fresh { // a port taken, say: leave no half-made data folder behind
			logFile.Close()
			os.RemoveAll(o.data)
		}
		return err
	}
	fmt.Fprintf(out, "drover server on %s (data in %s, log in %s)\n", info.URL, info.Data, logFile.Name())
	c := &clientOptions{server: info.URL, token: info.Token}
	w := &watcher{c: c, out: out, seen: map[string]string{}}
	var have []struct{ Name string }
	if err := c.call(http.MethodGet, "/api/v1/projects", nil, &have); err != nil {
		return err
	}
	// Secrets before the first push: the first runs ask for them.
	var secrets upSecrets
	for _, p := range projects {
		secrets.add(p.pipeline)
	}
	envs, err := upEnvironments(projects)
	if err != nil {
		return err
	}
	if err := secrets.seed(c, envs, out); err != nil {
		return err
	}
	for _, wave := range waves(projects) {
		for _, p := range wave {
			if slices.ContainsFunc(have, func(h struct{ Name string }) bool { return h.Name == p.name }) {
				changed, err := pushChanges(ctx, p.dir, info.URL, info.Token, p.name, upRecord(o.data, p.name))
				switch {
				case err != nil:
					return err
				case changed:
					fmt.Fprintf(out, "%-10s pushed your changes in %s as a new commit\n", p.name, p.dir)
				default:
					fmt.Fprintf(out, "%-10s already here: unchanged, not pushed again\n", p.name)
				}
				continue
			}
			if err := pushFolder(ctx, p.dir, info.URL, info.Token, p.name, upRecord(o.data, p.name)); err != nil {
				return err
			}
			fmt.Fprintf(out, "%-10s pushed from %s\n", p.name, p.dir)
		}
		// The next wave's ephemeral environments copy staging: wait for this one.
		if err := w.settle(ctx, wave); err != nil {
			break
		}
	}
	w.summary(info, projects)
	if o.keepServices {
		fmt.Fprintln(out, "Ctrl-C stops the server; the services go on serving (--keep-services).")
	} else {
		fmt.Fprintln(out, "Ctrl-C stops the server and everything it runs (--keep-services keeps the services serving).")
	}
	for ctx.Err() == nil { // keep showing progress: approvals, pushes, production
		w.poll(projects)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	services := "the services it started stop too"
	if o.keepServices {
		services = "the services go on serving"
	}
	fmt.Fprintln(out, "\nStopping: "+services+"; runs still going are queued again at the next start "+
		"when nothing they did reached outside their workspace, else they end in error (Ctrl-C again to quit at once) ...")
	err = <-errc
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		fmt.Fprintf(out, "Stopped. drover up again picks up where this left off (data in %s).\n", o.data)
	}
	return err
}

// upRecord is the file where drover up notes the git tree of project name's folder as
// it last pushed it: a folder that still has that tree was not edited since, whatever
// others pushed to the project meanwhile.
func upRecord(data, name string) string { return filepath.Join(data, "up", name+".tree") }

// record notes tree in the file at path.
func record(path, tree string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(tree+"\n"), 0o600)
}

// scratchRepo is a temporary git repository drover up pushes a folder from.
type scratchRepo struct {
	ctx         context.Context
	dir         string
	token, what string // what: "push shop", for errors, which never show the token
}

// newScratchRepo makes an empty scratch repository; remove its dir when done.
func newScratchRepo(ctx context.Context, token, what string) (*scratchRepo, error) {
	dir, err := os.MkdirTemp("", "drover-up-")
	if err != nil {
		return nil, err
	}
	return &scratchRepo{ctx: ctx, dir: dir, token: token, what: what}, nil
}

// git runs git there and returns its output.
func (r *scratchRepo) git(args ...string) (string, error) {
	cmd := exec.CommandContext(r.ctx, "git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: git %s: %v: %s", r.what, args[0], err, strings.ReplaceAll(string(out), r.token, "TOKEN"))
	}
	return string(out), nil
}

// gits runs git with each args in turn, stopping at the first failure.
func (r *scratchRepo) gits(args ...[]string) error {
	for _, a := range args {
		if _, err := r.git(a...); err != nil {
			return err
		}
	}
	return nil
}

// copyIn copies folder's content in, over what is there.
func (r *scratchRepo) copyIn(folder string) error {
	if out, err := exec.CommandContext(r.ctx, "cp", "-R", folder+"/.", r.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %v: %s", folder, err, out)
	}
	return nil
}

// tree is the git tree of what is staged.
func (r *scratchRepo) tree() (string, error) {
	out, err := r.git("write-tree")
	return strings.TrimSpace(out), err
}

// remoteOf is project name's hosted repository, with the token as its password.
func remoteOf(server, token, name string) string {
	return strings.Replace(server, "://", "://drover:"+token+"@", 1) + "/git/" + name + ".git"
}

// commitAs is git's arguments for drover up's commits.
func commitAs(message string) []string {
	return []string{"-c", "user.name=drover up", "-c", "user.email=up@drover.invalid", "commit", "-q", "-m", message}
}

// pushFolder pushes dir's content, as a new repository's first commit, to project name,
// and notes its tree at rec.
func pushFolder(ctx context.Context, dir, server, token, name, rec string) error {
	r, err := newScratchRepo(ctx, token, "push "+name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(r.dir)
	if err := r.copyIn(dir); err != nil {
		return err
	}
	err = r.gits([]string{"init", "-q", "-b", "main"}, []string{"add", "."}, commitAs("import "+name),
		[]string{"push", "-q", remoteOf(server, token, name), "main"})
	if err != nil {
		return err
	}
	tree, err := r.tree()
	if err != nil {
		return err
	}
	return record(rec, tree)
}

// pushChanges pushes what dir holds to project name's main branch as a new commit on
// top, when the folder was edited since drover up last pushed it (its tree differs from
// the one noted at rec; with no note, from the branch's). It reports whether it pushed.
func pushChanges(ctx context.Context, dir, server, token, name, rec string) (bool, error) {
	r, err := newScratchRepo(ctx, token, "update "+name)
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(r.dir)
	// The folder's content replaces the branch's: files removed from it go too.
	err = r.gits([]string{"clone", "-q", "--branch", "main", remoteOf(server, token, name), "."},
		[]string{"rm", "-r", "-q", "--ignore-unmatch", "."})
	if err != nil {
		return false, err
	}
	if err := r.copyIn(dir); err != nil {
		return false, err
	}
	if _, err := r.git("add", "-A", "."); err != nil {
		return false, err
	}
	tree, err := r.tree()
	if err != nil {
		return false, err
	}
	if last, err := os.ReadFile(rec); err == nil && strings.TrimSpace(string(last)) == tree {
		return false, nil // not edited since: what others pushed since stays
	}
	if out, err := r.git("status", "--porcelain"); err != nil || strings.TrimSpace(out) == "" {
		return false, errors.Join(err, record(rec, tree))
	}
	if err := r.gits(commitAs("changes from "+dir), []string{"push", "-q", "origin", "main"}); err != nil {
		return false, err
	}
	return true, record(rec, tree)
}

// watcher prints the steps of the projects' newest runs as they change.
type watcher struct {
	c    *clientOptions
	out  io.Writer
	seen map[string]string // project/run/step -> status printed
}

// upRun is the part of a run drover up shows.
type upRun struct {
	Number int    `json:"number"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	Steps  []struct {
		Name, Status, Reason string
	} `json:"steps"`
}

// poll prints what changed and reports the projects' newest runs.
func (w *watcher) poll(projects []upProject) map[string]upRun {
	runs := map[string]upRun{}
	for _, p := range projects {
		var list []upRun
		if err := w.c.call(http.MethodGet, "/api/v1/projects/"+p.name+"/runs?limit=1", nil, &list); err != nil || len(list) == 0 {
			continue
		}
		var run upRun
		if err := w.c.call(http.MethodGet, fmt.Sprintf("/api/v1/projects/%s/runs/%d", p.name, list[0].Number), nil, &run); err != nil {
			continue
		}
		runs[p.name] = run
		for _, s := range run.Steps {
			key := fmt.Sprintf("%s/%d/%s", p.name, run.Number, s.Name)
			if s.Status == "pending" || w.seen[key] == s.Status {
				continue
			}
			w.seen[key] = s.Status
			line := fmt.Sprintf("%-10s #%-3d %-12s %s", p.name, run.Number, s.Name, s.Status)
			if s.Reason != "" && s.Status != "success" {
				// Whole: a health check's failure ends with the instance's last output.
				line += ": " + strings.ReplaceAll(strings.TrimSpace(s.Reason), "\n", "\n      ")
			}
			fmt.Fprintln(w.out, line)
		}
	}
	return runs
}

// settle waits until the newest run of every project of wave has stopped moving
// (finished, or waiting for an approval).
func (w *watcher) settle(ctx context.Context, wave []upProject) error {
	for {
		runs := w.poll(wave)
		done := true
		for _, p := range wave {
			r, ok := runs[p.name]
			done = done && ok && r.Status != "pending" && r.Status != "running"
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// summary prints where the system runs and what waits for a person.
func (w *watcher) summary(info serverInfo, projects []upProject) {
	proxyPort := info.Proxy[strings.LastIndexByte(info.Proxy, ':'):]
	fmt.Fprintf(w.out, "\nThe system is up.\n  web UI:    %s/pipeline  (sign in with the token in %s)\n",
		info.URL, filepath.Join(info.Data, "admin-token"))
	w.poll(projects)
	for _, p := range projects {
		if p.name != SystemProject {
			fmt.Fprintf(w.out, "  %-10s http://%s.staging.localhost%s/\n", p.name, p.name, proxyPort)
		}
	}
	// Every run that waits, not only the newest: after a restart, or a newer run that
	// failed, older ones may still wait for their approval.
	var waiting []string
	waits := map[string]bool{}
	for _, p := range projects {
		var list []upRun
		if err := w.c.call(http.MethodGet, "/api/v1/projects/"+p.name+"/runs?status=waiting&limit=20", nil, &list); err != nil {
			continue
		}
		slices.SortFunc(list, func(a, b upRun) int { return a.Number - b.Number })
		for _, r := range list {
			waiting = append(waiting, fmt.Sprintf("%s %d", p.name, r.Number))
			waits[p.name] = true
		}
	}
	if len(waiting) > 0 {
		fmt.Fprintf(w.out, "Waiting for a release manager's approval to go to production:\n")
		// From this folder with the default address and data folder, the CLI finds the
		// server and the token by itself.
		flags := ""
		if info.URL != "http://127.0.0.1:8080" || filepath.Clean(info.Data) != "drover-data" {
			flags = fmt.Sprintf(" --server %s --token $(cat %s)", info.URL, filepath.Join(info.Data, "admin-token"))
		}
		for _, wt := range waiting {
			fmt.Fprintf(w.out, "  drover approve %s%s\n", wt, flags)
		}
		fmt.Fprintf(w.out, "  or the Approve buttons on %s/pipeline\n", info.URL)
		for _, p := range projects {
			if waits[p.name] && len(p.requires) > 0 {
				fmt.Fprintf(w.out, "  %s requires %s: approve it once they run in production (its deploy is refused before)\n",
					p.name, words.And(p.requires))
			}
		}
	}
}
