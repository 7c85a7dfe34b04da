package console

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/drover-cd/drover/engine"
)

// Summary writes the table that ends a run: each step's status, duration and findings,
// then the run's verdict.
func Summary(w io.Writer, res *engine.RunResult, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + reset
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTEP\tSTATUS\tDURATION\tDETAILS")
	for _, s := range res.Steps {
		status := string(s.Status)
		if s.Allowed {
			status += " (allowed)"
		}
		dur := "-"
		if d := s.Duration(); d > 0 {
			dur = round(d)
		}
		// tabwriter counts escape codes as width: pad the plain text, then paint it.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, paint(statusColor(s), status), dur, details(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := fmt.Sprintf("\nrun %s in %s", res.Status, round(res.Finished.Sub(res.Started)))
	if res.Artifact != nil {
		verdict += fmt.Sprintf(" · artifact %s", res.Artifact.Digest)
	}
	_, err := fmt.Fprintln(w, paint(runColor(res.Status), verdict))
	return err
}

func statusColor(s *engine.StepResult) string {
	switch {
	case s.Status == engine.Success:
		return green
	case s.Status == engine.Skipped || s.Allowed:
		return yellow
	case s.Status == engine.Cancelled:
		return dim
	}
	return red
}

func runColor(s engine.Status) string {
	if s == engine.Success {
		return green
	}
	return red
}

// details is what a step found: its failure reason, tests, coverage and artifacts.
func details(s *engine.StepResult) string {
	var parts []string
	if s.Reason != "" && s.Status != engine.Success {
		parts = append(parts, s.Reason)
	}
	if s.Attempts > 1 {
		parts = append(parts, fmt.Sprintf("%d attempts", s.Attempts))
	}
	if r := s.Reports; r != nil {
		if t := r.Tests; t != nil {
			parts = append(parts, fmt.Sprintf("tests %d passed, %d failed, %d skipped", t.Passed, t.Failed, t.Skipped))
		}
		if c := r.Coverage; c != nil {
			parts = append(parts, fmt.Sprintf("coverage %.1f%%", c.Percent()))
		}
	}
	for _, a := range s.Artifacts {
		parts = append(parts, fmt.Sprintf("%s %s", a.Annotations["org.opencontainers.image.title"], a.Digest))
	}
	return strings.Join(parts, " · ")
}
