package console

import (
	"bytes"
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
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATUS\tDURATION\tDETAILS")
	statuses := make([]string, len(res.Steps))
	for i, s := range res.Steps {
		statuses[i] = string(s.Status)
		if s.Allowed {
			statuses[i] += " (allowed)"
		}
		dur := "-"
		if d := s.Duration(); d > 0 {
			dur = round(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, statuses[i], dur, details(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Colour after alignment: tabwriter would count the escape codes as width.
	// tabwriter aligns runes, not bytes, so the status column is found by rune.
	lines := strings.SplitAfter(table.String(), "\n")
	col := strings.Index(lines[0], "STATUS") // the header is ASCII
	var b strings.Builder
	b.WriteString("\n" + lines[0])
	for i, line := range lines[1:] {
		if r := []rune(line); i < len(statuses) && len(r) >= col+len(statuses[i]) {
			end := col + len(statuses[i])
			line = string(r[:col]) + paint(statusColor(res.Steps[i]), string(r[col:end])) + string(r[end:])
		}
		b.WriteString(line)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
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
