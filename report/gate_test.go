package report

import (
	"errors"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestCheck(t *testing.T) {
	cov := func(covered, total int64) *Coverage { return &Coverage{Covered: covered, Total: total, Format: "go"} }
	tests := []struct {
		name string
		g    Gates
		s    Summary
		want []string // messages of the failed gates, in order
	}{
		{"nothing configured", Gates{}, Summary{}, nil},
		{"coverage above", Gates{Coverage: ptr(70.0)}, Summary{Coverage: cov(71, 100)}, nil},
		{"coverage exactly at gate", Gates{Coverage: ptr(70.0)}, Summary{Coverage: cov(7, 10)}, nil},
		{"coverage below", Gates{Coverage: ptr(70.0)}, Summary{Coverage: cov(642, 1000)},
			[]string{"coverage 64.2% is below the gate of 70%"}},
		{"coverage just below keeps precision", Gates{Coverage: ptr(70.0)}, Summary{Coverage: cov(6996, 10000)},
			[]string{"coverage 69.96% is below the gate of 70%"}},
		{"fractional gate", Gates{Coverage: ptr(72.5)}, Summary{Coverage: cov(64, 100)},
			[]string{"coverage 64% is below the gate of 72.5%"}},
		{"empty coverage fails a gate", Gates{Coverage: ptr(1.0)}, Summary{Coverage: cov(0, 0)},
			[]string{"coverage 0% is below the gate of 1%"}},
		{"coverage gate without a report", Gates{Coverage: ptr(70.0)}, Summary{Tests: &Tests{Passed: 3}},
			[]string{"coverage gate 70%: no coverage report was found"}},
		{"implicit no failures rule passes", Gates{}, Summary{Tests: &Tests{Passed: 3, Skipped: 2}}, nil},
		{"implicit no failures rule", Gates{}, Summary{Tests: &Tests{Passed: 4, Failed: 3}},
			[]string{"3 tests failed; the gate allows 0"}},
		{"one failure", Gates{}, Summary{Tests: &Tests{Failed: 1}},
			[]string{"1 test failed; the gate allows 0"}},
		{"failures under the allowance", Gates{Failures: ptr(2)}, Summary{Tests: &Tests{Failed: 2}}, nil},
		{"failures over the allowance", Gates{Failures: ptr(2)}, Summary{Tests: &Tests{Failed: 5}},
			[]string{"5 tests failed; the gate allows 2"}},
		{"failures gate without a report", Gates{Failures: ptr(0)}, Summary{},
			[]string{"failed-tests gate 0: no test report was found"}},
		{"both fail", Gates{Coverage: ptr(80.0), Failures: ptr(1)}, Summary{Tests: &Tests{Failed: 2}, Coverage: cov(1, 2)},
			[]string{"2 tests failed; the gate allows 1", "coverage 50% is below the gate of 80%"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.g, tt.s)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrGate) {
				t.Fatalf("Check = %v, want an error wrapping ErrGate", err)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("Check = %q, want %q", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestCheckGateErrorFields(t *testing.T) {
	err := Check(Gates{Coverage: ptr(70.0), Failures: ptr(1)},
		Summary{Tests: &Tests{Failed: 3}, Coverage: &Coverage{Covered: 1, Total: 4}})
	var ge *GateError
	if !errors.As(err, &ge) {
		t.Fatalf("errors.As(%v, *GateError) = false", err)
	}
	if ge.Gate != "failures" || ge.Actual != 3 || ge.Limit != 1 {
		t.Errorf("first gate error = %+v", ge)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 2 {
		t.Fatalf("want two joined errors, got %v", err)
	}
	c := joined.Unwrap()[1].(*GateError)
	if c.Gate != "coverage" || c.Actual != 25 || c.Limit != 70 {
		t.Errorf("coverage gate error = %+v", c)
	}
	if !errors.Is(c, ErrGate) {
		t.Error("GateError does not unwrap to ErrGate")
	}
	if got := (&GateError{Gate: "coverage", Actual: 5, Limit: 7}).Error(); got != "coverage gate failed: 5 (limit 7)" {
		t.Errorf("Error() without Msg = %q", got)
	}
}
