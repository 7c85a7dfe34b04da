package report

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Gates are thresholds a step's reports must meet. Nil fields are not checked.
type Gates struct {
	Coverage *float64 // minimum coverage percent
	Failures *int     // maximum failed tests; when nil, any failed test fails (0 allowed)
}

// Summary is what Collect found. Tests or Coverage is nil when no such report
// was configured or found.
type Summary struct {
	Tests    *Tests
	Coverage *Coverage
	Files    []string // report files read, relative to the workspace, sorted
}

// ErrGate is wrapped by every GateError, so callers can test for a failed
// quality gate with errors.Is.
var ErrGate = errors.New("quality gate failed")

// GateError says which gate failed, naming the figure and the threshold,
// e.g. "coverage 64.2% is below the gate of 70%" or "3 tests failed; the
// gate allows 0".
type GateError struct {
	Gate   string  // "coverage" or "failures"
	Actual float64 // the measured figure; 0 when the report is missing
	Limit  float64 // the threshold
	Msg    string  // the human-readable explanation returned by Error
}

// Error returns the explanation of the failed gate.
func (e *GateError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("%s gate failed: %s (limit %s)", e.Gate, fmtNum(e.Actual), fmtNum(e.Limit))
}

// Unwrap returns ErrGate.
func (e *GateError) Unwrap() error { return ErrGate }

// Check evaluates the gates, and the implicit "no failed tests" rule when
// s.Tests is not nil and g.Failures is nil. It returns every failed gate,
// each a *GateError, joined with errors.Join, or nil when all pass.
// A coverage gate without a coverage report fails, and so does an explicit
// failures gate without a test report.
func Check(g Gates, s Summary) error {
	var errs []error
	if s.Tests != nil || g.Failures != nil {
		limit := 0
		if g.Failures != nil {
			limit = *g.Failures
		}
		e := &GateError{Gate: "failures", Limit: float64(limit)}
		switch {
		case s.Tests == nil:
			e.Msg = fmt.Sprintf("failed-tests gate %d: no test report was found", limit)
			errs = append(errs, e)
		case s.Tests.Failed > limit:
			e.Actual = float64(s.Tests.Failed)
			noun := "tests"
			if s.Tests.Failed == 1 {
				noun = "test"
			}
			e.Msg = fmt.Sprintf("%d %s failed; the gate allows %d", s.Tests.Failed, noun, limit)
			errs = append(errs, e)
		}
	}
	if g.Coverage != nil {
		limit := *g.Coverage
		e := &GateError{Gate: "coverage", Limit: limit}
		switch {
		case s.Coverage == nil:
			e.Msg = fmt.Sprintf("coverage gate %s%%: no coverage report was found", fmtNum(limit))
			errs = append(errs, e)
		case s.Coverage.Percent() < limit:
			e.Actual = s.Coverage.Percent()
			e.Msg = fmt.Sprintf("coverage %s%% is below the gate of %s%%", fmtBelow(e.Actual, limit), fmtNum(limit))
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// fmtNum formats a threshold in the shortest form: 70, 72.5.
func fmtNum(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// fmtBelow formats actual, which is below limit, to one decimal place, or
// more when rounding would hide the difference (69.96 is "69.96", not "70").
func fmtBelow(actual, limit float64) string {
	var s string
	for prec := 1; prec <= 6; prec++ {
		s = strconv.FormatFloat(actual, 'f', prec, 64)
		if v, _ := strconv.ParseFloat(s, 64); v < limit {
			break
		}
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
