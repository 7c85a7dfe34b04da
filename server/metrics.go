package server

import (
	"fmt"
	"net/http"
	"sort"
)

// metrics answers in the Prometheus text format (version 0.0.4).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	counts, err := s.cfg.Store.CountRuns(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintln(w, "# HELP drover_runs Runs stored, by status.")
	fmt.Fprintln(w, "# TYPE drover_runs gauge")
	statuses := make([]string, 0, len(counts))
	for st := range counts {
		statuses = append(statuses, st)
	}
	sort.Strings(statuses)
	for _, st := range statuses {
		fmt.Fprintf(w, "drover_runs{status=%q} %d\n", st, counts[st])
	}
	fmt.Fprintln(w, "# HELP drover_queue_length Runs waiting for a worker.")
	fmt.Fprintln(w, "# TYPE drover_queue_length gauge")
	fmt.Fprintf(w, "drover_queue_length %d\n", counts["pending"])
	s.cfg.Runner.StepDurations.WritePrometheus(w, "drover_step_duration_seconds",
		"How long steps ran, since the server started.")
}
