package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/backend/container"
	"github.com/drover-cd/drover/backend/process"
	"github.com/drover-cd/drover/console"
	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/internal/duration"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/runlog"
	"github.com/drover-cd/drover/source"
)

// errInterrupted is the cause the run is cancelled with on Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted")

type runOptions struct {
	dir      string
	file     string
	steps    []string
	env      []string
	branch   string
	event    string
	parallel int
	grace    time.Duration
}

func runCommand() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline in this folder, as CI would, with no server",
		Long: `Run the pipeline of drover.yml on this machine: steps in the order written unless
needs: says otherwise, independent steps in parallel. Each step's output is shown
prefixed with its name and kept in .drover/runs/N/; artifacts are stored in
.drover/artifacts/ (an OCI image layout).

Ctrl-C stops the running steps (SIGTERM, then SIGKILL after --grace), still runs
clean-up steps (when: {status: always}), and exits with 130; a second Ctrl-C stops
the clean-up too.`,
		Example: `  drover run
  drover run --step lint --step test
  drover run -C examples/hello --env GOFLAGS=-race --branch main`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.dir, "dir", "C", ".", "run as if drover was started in this folder (the workspace)")
	f.StringVarP(&o.file, "file", "f", "drover.yml", "pipeline file, relative to the workspace")
	f.StringArrayVar(&o.steps, "step", nil, "run only this step (repeatable; a matrix step's name selects all its combinations)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set a variable for every step, over drover.yml's env (KEY=VALUE, repeatable)")
	f.StringVar(&o.branch, "branch", "", "branch for when: conditions and DROVER_BRANCH (default: the checkout's branch)")
	f.StringVar(&o.event, "event", "push", "event for when: conditions: push, pull_request, tag, manual or cron")
	f.IntVarP(&o.parallel, "parallel", "p", runtime.NumCPU(), "most steps running at once")
	f.Var(duration.Flag(&o.grace, 10*time.Second), "grace", "time a stopped step gets between SIGTERM and SIGKILL")
	return cmd
}

func (o *runOptions) run(stdout, stderr io.Writer) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return badInput(err)
	}
	if err := o.check(); err != nil {
		return badInput(err)
	}
	g, err := loadGraphAt(filepath.Join(dir, o.file), filepath.Join(o.dir, o.file))
	if err != nil {
		return err
	}
	if err := g.Select(o.steps); err != nil {
		return badInput(err)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	cleanup, stopCleanup := context.WithCancelCause(context.Background())
	defer stopCleanup(nil)

	checkout, _, err := source.Local(ctx, dir)
	if err != nil {
		return err
	}
	trigger := pipeline.Trigger{Branch: checkout.Branch, Event: o.event}
	if o.branch != "" {
		trigger.Branch = o.branch
	}
	if g.UsesChangedFiles() && checkout.Dir != "" {
		if files, err := checkout.Changed(ctx); err == nil {
			trigger.Changed, trigger.ChangedKnown = files, true
		}
	}

	rd, err := runlog.Create(filepath.Join(dir, ".drover", "runs"))
	if err != nil {
		return err
	}
	store, err := artifact.Open(filepath.Join(dir, ".drover", "artifacts"))
	if err != nil {
		return err
	}
	color := false
	if f, ok := stdout.(*os.File); ok {
		color = console.IsTerminal(f)
	}
	printer := console.NewPrinter(stdout, color)

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		printer.Fprintln("drover: interrupted: stopping the running steps; clean-up steps still run (Ctrl-C again to stop them)")
		cancel(errInterrupted)
		if _, ok := <-signals; ok {
			stopCleanup(errInterrupted)
		}
	}()

	// Containers: steps with image:, services: or build: run on the local Docker Engine,
	// connected on first use; built images stay on this machine.
	backend := &container.Backend{Engine: docker.Lazy("drover run", docker.Registry{}),
		Local: &process.Backend{Grace: o.grace}, Grace: o.grace}
	eng := &engine.Engine{Backend: backend, Parallel: o.parallel}
	base, hidden := withoutSecrets(os.Environ(), g)
	job := engine.Job{
		Graph:     g,
		Workspace: dir,
		Vars: engine.Vars{Run: rd.Number, Branch: trigger.Branch, Commit: checkout.Commit,
			Event: o.event, Workspace: dir},
		Trigger:   trigger,
		BaseEnv:   base,
		Hidden:    hidden,
		Overrides: o.env,
		Sink:      engine.Sinks{printer, rd},
		Artifacts: store,
		Cleanup:   cleanup,
		Secrets:   shellSecrets(printer),
	}
	if checkout.Commit != "" {
		job.Annotations = map[string]string{"org.opencontainers.image.revision": checkout.Commit}
	}
	res, err := eng.Run(ctx, job)
	if err != nil {
		return err
	}
	if err := printer.Close(); err != nil {
		return err
	}
	if err := console.Summary(stdout, res, color); err != nil {
		return err
	}
	rec := runlog.Record{Number: rd.Number, Status: res.Status, Started: res.Started, Finished: res.Finished,
		Branch: trigger.Branch, Commit: checkout.Commit, Steps: res.Steps}
	if res.Artifact != nil {
		rec.Artifact = res.Artifact.Digest.String()
		if err := store.Tag(fmt.Sprintf("run-%d", rd.Number), *res.Artifact); err != nil {
			return err
		}
	}
	if err := errors.Join(rd.Close(), rd.WriteResult(rec)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "logs: %s\n", fromHere(rd.Path))
	return exitFor(ctx, res.Status)
}

// fromHere is path as the person who started drover names it: relative to the folder
// they are in (not the workspace -C chose), or absolute when that is shorter to read.
func fromHere(path string) string {
	cwd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(cwd, path)
	if err != nil || strings.HasPrefix(rel, "../..") {
		return path
	}
	return rel
}

// withoutSecrets splits environ: the variables every step gets, without the ones any step
// asks for as secrets (those go only to the steps that ask), and the values of those, to
// be masked from the start.
func withoutSecrets(environ []string, g *pipeline.Graph) (base, hidden []string) {
	asked := map[string]bool{}
	for _, n := range g.Nodes {
		for _, name := range n.Step.Secrets {
			asked[name] = true
		}
	}
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); asked[k] {
			hidden = append(hidden, v)
			continue
		}
		base = append(base, kv)
	}
	return base, hidden
}

// shellSecrets is Job.Secrets without a server: each secret a step asks for is the
// variable of that name in drover run's own environment, and drover run says so.
func shellSecrets(printer *console.Printer) func(context.Context, engine.SecretRequest) ([]string, error) {
	return func(_ context.Context, req engine.SecretRequest) ([]string, error) {
		vars := make([]string, 0, len(req.Names))
		for _, name := range req.Names {
			v, ok := os.LookupEnv(name)
			if !ok || v == "" {
				return nil, fmt.Errorf("step %q asks for the secret %s: without a server it comes from this shell's environment, where it is not set (export %s=...)", req.Step, name, name)
			}
			if len(v) < mask.MinLength {
				return nil, fmt.Errorf("step %q asks for the secret %s: its value in this shell is shorter than %d bytes and could not be masked", req.Step, name, mask.MinLength)
			}
			vars = append(vars, name+"="+v)
		}
		printer.Fprintln(fmt.Sprintf("drover run: step %q takes %s from this shell's environment (no server here); the values are masked", req.Step, strings.Join(req.Names, ", ")))
		return vars, nil
	}
}

// check rejects flags that cannot work before anything runs.
func (o *runOptions) check() error {
	for _, kv := range o.env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\n$") {
			return fmt.Errorf("--env %q: write it as KEY=VALUE", kv)
		}
	}
	if !pipeline.IsEvent(o.event) {
		return fmt.Errorf("--event %q: use one of %s", o.event, pipeline.EventNames())
	}
	if o.parallel < 1 {
		return fmt.Errorf("--parallel %d: at least 1 step must be able to run", o.parallel)
	}
	return nil
}

// exitFor maps a run's outcome to the process's exit code.
func exitFor(ctx context.Context, status engine.Status) error {
	switch {
	case errors.Is(context.Cause(ctx), errInterrupted):
		return &exitError{code: exitInterrupted, err: errors.New("")}
	case status == engine.Success:
		return nil
	}
	return &exitError{code: exitFailed, err: errors.New("")}
}
