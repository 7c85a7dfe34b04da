package pipeline

import (
	"strings"
	"testing"
	"time"
)

// Every duration in drover.yml takes days too, as flags and the API do (issue 14).
func TestDurationsTakeDays(t *testing.T) {
	p, err := Parse("drover.yml", []byte(`
service:
  name: shop
  command: ./shop
  health: {path: /healthz, interval: 1d, timeout: 1.5d}
steps:
  - name: build
    run: make
    timeout: 1d12h
  - name: go-live
    approval: {role: release-manager, timeout: 7d}
`))
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	if got := p.Steps[0].Timeout; got != 36*time.Hour {
		t.Errorf("timeout: 1d12h = %v", got)
	}
	if got := p.Steps[1].Approval.Timeout; got != 7*day {
		t.Errorf("approval timeout: 7d = %v", got)
	}
	if h := p.Service.Health; h.Interval != day || h.Timeout != 36*time.Hour {
		t.Errorf("health interval 1d, timeout 1.5d = %v, %v", h.Interval, h.Timeout)
	}

	_, err = Parse("drover.yml", []byte("steps:\n  - name: a\n    run: x\n    timeout: -1d\n"))
	if err == nil || !strings.Contains(err.Error(), `drover.yml:4:14: timeout: "-1d" is not a duration`) {
		t.Errorf("timeout: -1d: %v", err)
	}
}
