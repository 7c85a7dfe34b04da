package runner

import (
	"strings"
	"testing"
	"time"
)

func TestHistogramIsCumulative(t *testing.T) {
	h := NewHistogram(0.1, 1, 10)
	for _, d := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, time.Minute} {
		h.Observe(d)
	}
	var b strings.Builder
	h.WritePrometheus(&b, "drover_step_duration_seconds", "Step durations.")
	for _, want := range []string{
		`drover_step_duration_seconds_bucket{le="0.1"} 1`,
		`drover_step_duration_seconds_bucket{le="1"} 2`,
		`drover_step_duration_seconds_bucket{le="10"} 3`,
		`drover_step_duration_seconds_bucket{le="+Inf"} 4`,
		`drover_step_duration_seconds_count 4`,
		"# TYPE drover_step_duration_seconds histogram",
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}
