package engine

import (
	"strconv"

	"github.com/drover-cd/drover/report"
)

// Annotation keys Drover writes on a run's artifact manifest, beside the job's own.
const (
	AnnotationTestsPassed  = "dev.drover.tests.passed"  // test cases passed, summed over the steps' reports
	AnnotationTestsFailed  = "dev.drover.tests.failed"  // test cases failed or errored
	AnnotationTestsSkipped = "dev.drover.tests.skipped" // test cases skipped
	AnnotationCoverage     = "dev.drover.coverage"      // covered statements in percent, one decimal
	// AnnotationImage is the container image a build: step made, "REPO@DIGEST" in
	// Drover's registry: what service.image: self deploys.
	AnnotationImage = "dev.drover.image"
)

// OutcomeAnnotations describes what steps measured for a run's artifact manifest: when
// they published reports, the summed test counts and the coverage over all of them. The
// run's status is left out on purpose: a deploy step publishes the artifact as it stands
// mid-run, and the run's final manifest must come out byte for byte the same when no
// later step adds layers or reports. Whether a run passed is its release tag.
func OutcomeAnnotations(steps []*StepResult) map[string]string {
	ann := map[string]string{}
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
