package engine

import (
	"strconv"

	"github.com/drover-cd/drover/report"
)

// Annotation keys Drover writes on a run's artifact manifest, beside the job's own.
const (
	AnnotationStatus       = "dev.drover.status"        // the run's status: success when every gate passed
	AnnotationTestsPassed  = "dev.drover.tests.passed"  // test cases passed, summed over the steps' reports
	AnnotationTestsFailed  = "dev.drover.tests.failed"  // test cases failed or errored
	AnnotationTestsSkipped = "dev.drover.tests.skipped" // test cases skipped
	AnnotationCoverage     = "dev.drover.coverage"      // covered statements in percent, one decimal
)

// OutcomeAnnotations describes a run's outcome for its artifact manifest: its status and,
// when steps published reports, the summed test counts and the coverage over all of them.
func OutcomeAnnotations(status Status, steps []*StepResult) map[string]string {
	ann := map[string]string{AnnotationStatus: string(status)}
	var tests report.Tests
	var cov report.Coverage
	var haveTests, haveCov bool
	for _, s := range steps {
		if s.Reports == nil {
			continue
		}
		if t := s.Reports.Tests; t != nil {
			haveTests = true
			tests.Passed += t.Passed
			tests.Failed += t.Failed
			tests.Skipped += t.Skipped
		}
		if c := s.Reports.Coverage; c != nil {
			haveCov = true
			cov.Covered += c.Covered
			cov.Total += c.Total
		}
	}
	if haveTests {
		ann[AnnotationTestsPassed] = strconv.Itoa(tests.Passed)
		ann[AnnotationTestsFailed] = strconv.Itoa(tests.Failed)
		ann[AnnotationTestsSkipped] = strconv.Itoa(tests.Skipped)
	}
	if haveCov {
		ann[AnnotationCoverage] = strconv.FormatFloat(cov.Percent(), 'f', 1, 64)
	}
	return ann
}
