package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxDetail caps Failure.Detail, in bytes.
const maxDetail = 64 << 10

// Tests summarises one or more JUnit reports.
type Tests struct {
	Passed, Failed, Skipped int           // Failed counts <failure> and <error> test cases
	Duration                time.Duration // sum of testcase time attributes
	Failures                []Failure     // failed cases in document order
}

// Failure describes one failed or errored test case.
//
// Its JSON is snake_case like the rest of the API; encoding/json matches keys without
// regard to case, so run.json files written with the old keys (Suite, Message...) read.
type Failure struct {
	Suite string `json:"suite"`
	Class string `json:"class"`
	Name  string `json:"name"`
	// Message is the assertion a test runner wrote (Go's "file_test.go:12: got 3, want
	// 4"), else the failure/error element's message attribute, else the first line of
	// its text, else its type attribute.
	Message string `json:"message"`
	Detail  string `json:"detail"` // the element's text content, trimmed, capped at 64 KiB
	File    string `json:"file"`   // the report file it came from (set by Collect)
}

// assertion is the first line of detail that a Go test's t.Error or t.Fatal wrote
// ("    main_test.go:12: got 3, want 4"), trimmed; "" when there is none.
var assertion = regexp.MustCompile(`(?m)^\s*([\w.-]+_test\.go:\d+: .*\S)\s*$`)

// headline is what a failure's Message should say: the assertion when the runner's
// message says no more than that the test failed (gotestsum writes "Failed").
func headline(msg, detail string) string {
	generic := msg == "" || strings.EqualFold(msg, "failed") || strings.EqualFold(msg, "failure") ||
		strings.HasPrefix(msg, "=== RUN") || strings.HasPrefix(msg, "--- FAIL")
	if m := assertion.FindStringSubmatch(detail); m != nil && generic {
		return m[1]
	}
	return msg
}

// Total returns the number of test cases: passed, failed and skipped.
func (t Tests) Total() int { return t.Passed + t.Failed + t.Skipped }

// Add adds the counts, duration and failures of o to t.
func (t *Tests) Add(o Tests) {
	t.Passed += o.Passed
	t.Failed += o.Failed
	t.Skipped += o.Skipped
	t.Duration = addDuration(t.Duration, o.Duration)
	t.Failures = append(t.Failures, o.Failures...)
}

// ParseJUnit reads one JUnit XML document. The root element must be
// <testsuites> or <testsuite>; test cases are counted from the <testcase>
// elements, never from the tests= or failures= attributes of the suites.
// A test case with a <failure> or <error> child is failed, one with only a
// <skipped> child is skipped; Surefire's <flakyFailure> and <rerunFailure>
// children do not make a test fail.
func ParseJUnit(r io.Reader) (Tests, error) {
	t, err := parseJUnit(r)
	if err != nil {
		return Tests{}, fmt.Errorf("report: parsing JUnit XML: %w", err)
	}
	return t, nil
}

// testCase is the <testcase> being read.
type testCase struct {
	depth     int // element depth of the <testcase>
	failed    bool
	skipped   bool
	capturing bool // inside the first <failure> or <error>
	seconds   string
	fail      Failure
	msgSet    bool // the failure had a message attribute
	failType  string
	text      textBuf
}

func parseJUnit(r io.Reader) (Tests, error) {
	d := xml.NewDecoder(r)
	d.Entity = xml.HTMLEntity
	var (
		t      Tests
		suites []string // names of the enclosing <testsuite>s
		depth  int
		tc     *testCase
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return Tests{}, errors.New("not a JUnit report: no root element")
		}
		if err != nil {
			return Tests{}, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			name := tok.Name.Local
			if depth == 1 && name != "testsuites" && name != "testsuite" {
				return Tests{}, fmt.Errorf("not a JUnit report: root element is <%s>, want <testsuites> or <testsuite>", name)
			}
			switch {
			case tc != nil:
				if depth == tc.depth+1 {
					tc.child(tok)
				}
			case name == "testsuite":
				suites = append(suites, attr(tok, "name"))
			case name == "testcase":
				tc = &testCase{depth: depth, seconds: attr(tok, "time")}
				if len(suites) > 0 {
					tc.fail.Suite = suites[len(suites)-1]
				}
				tc.fail.Class = attr(tok, "classname")
				tc.fail.Name = attr(tok, "name")
			}
		case xml.EndElement:
			switch {
			case tc != nil && depth == tc.depth:
				t.addCase(tc)
				tc = nil
			case tc != nil && depth == tc.depth+1:
				tc.capturing = false
			case tc == nil && tok.Name.Local == "testsuite":
				suites = suites[:len(suites)-1]
			}
			depth--
			if depth == 0 {
				return t, nil
			}
		case xml.CharData:
			if tc != nil && tc.capturing {
				tc.text.add(tok)
			}
		}
	}
}

// child handles a direct child element of the <testcase>.
func (tc *testCase) child(el xml.StartElement) {
	switch el.Name.Local {
	case "skipped":
		tc.skipped = true
	case "failure", "error":
		if tc.failed {
			return // keep the first failure's message and text
		}
		tc.failed = true
		tc.capturing = true
		if msg, ok := attrOK(el, "message"); ok && strings.TrimSpace(msg) != "" {
			tc.fail.Message = strings.TrimSpace(msg)
			tc.msgSet = true
		}
		tc.failType = strings.TrimSpace(attr(el, "type"))
	}
}

// addCase counts a finished test case.
func (t *Tests) addCase(tc *testCase) {
	t.Duration = addDuration(t.Duration, parseSeconds(tc.seconds))
	switch {
	case tc.failed:
		t.Failed++
		f := tc.fail
		f.Detail = tc.text.String()
		if !tc.msgSet {
			first, _, _ := strings.Cut(f.Detail, "\n")
			f.Message = strings.TrimSpace(first)
		}
		f.Message = headline(f.Message, f.Detail)
		if f.Message == "" {
			f.Message = tc.failType
		}
		t.Failures = append(t.Failures, f)
	case tc.skipped:
		t.Skipped++
	default:
		t.Passed++
	}
}

// textBuf collects element text, dropping leading white space and keeping
// at most maxDetail bytes.
type textBuf struct {
	b         []byte
	truncated bool
}

func (tb *textBuf) add(data []byte) {
	if len(tb.b) == 0 {
		data = bytes.TrimLeft(data, " \t\r\n")
	}
	if room := maxDetail - len(tb.b); len(data) > room {
		data = data[:room]
		tb.truncated = true
	}
	tb.b = append(tb.b, data...)
}

// String returns the trimmed text, without a rune cut in half by the cap.
func (tb *textBuf) String() string {
	b := tb.b
	if tb.truncated {
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0; i++ {
			if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size != 1 {
				break
			}
			b = b[:len(b)-1]
		}
	}
	return strings.TrimSpace(string(b))
}

// maxSeconds is the longest time attribute a Duration can hold.
const maxSeconds = float64(math.MaxInt64) / 1e9

// parseSeconds converts a time attribute ("0.123", Surefire's "1,234.5") to
// a Duration. Missing, malformed or negative values count as zero.
func parseSeconds(s string) time.Duration {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= maxSeconds {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Round(f * 1e9))
}

// addDuration adds two non-negative durations, saturating instead of
// overflowing.
func addDuration(a, b time.Duration) time.Duration {
	if b > 0 && a > math.MaxInt64-b {
		return time.Duration(math.MaxInt64)
	}
	return a + b
}

// attr returns the value of the named attribute, or "".
func attr(el xml.StartElement, name string) string {
	v, _ := attrOK(el, name)
	return v
}

func attrOK(el xml.StartElement, name string) (string, bool) {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}
