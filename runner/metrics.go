package runner

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Histogram counts durations in Prometheus-style cumulative buckets.
type Histogram struct {
	mu     sync.Mutex
	bounds []float64 // upper bounds in seconds, ascending
	counts []uint64  // per bucket (not cumulative); the last is +Inf
	sum    float64
	count  uint64
}

// NewHistogram makes a histogram with the given upper bounds in seconds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += s
	h.count++
}

// WritePrometheus writes the histogram in the Prometheus text format under name.
func (h *Histogram) WritePrometheus(w io.Writer, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.count, name, h.sum, name, h.count)
}
