// Package report parses the test reports and coverage files that pipeline steps
// write (JUnit XML, Go cover profiles, Cobertura XML) and checks quality gates.
//
// The parsers stream their input with encoding/xml or bufio, so large reports
// are not held in memory as a tree. Collect reads the files a step declared
// from its workspace, confined to that directory, and Check compares the
// result with the step's Gates.
package report
