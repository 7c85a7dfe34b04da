package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// wantFailure describes an expected Failure; Detail is checked by its first
// and last bytes so the long stack traces need not be repeated here.
type wantFailure struct {
	suite, class, name, message string
	detailPrefix, detailSuffix  string
}

func TestParseJUnitFixtures(t *testing.T) {
	const goPkg = "github.com/drover-cd/drover/"
	tests := []struct {
		file                    string
		passed, failed, skipped int
		duration                time.Duration
		failures                []wantFailure
	}{
		{"go-junit-report.xml", 3, 3, 1, 443 * time.Millisecond, []wantFailure{
			{goPkg + "engine", goPkg + "engine", "TestRunStep/timeout", "engine_test.go:88: step did not time out after 200ms", // the assertion, not go-junit-report's "Failed"
				"engine_test.go:88: step did not time out after 200ms\n    engine_test.go:89:", "got exit code 0, want 124"},
			{goPkg + "pipeline", goPkg + "pipeline", "TestParse/matrix", "parse_test.go:51: matrix expanded to 3 jobs, want 4",
				"parse_test.go:51: matrix", "expanded to 3 jobs, want 4"},
			{goPkg + "source", goPkg + "source", "[build failed]", "Build error",
				"source/git.go:14:2: undefined: fetchRef", "source/git.go:14:2: undefined: fetchRef"},
		}},
		{"pytest.xml", 2, 2, 2, 251 * time.Millisecond, []wantFailure{
			{"pytest", "tests.test_api", "test_create_pipeline",
				"AssertionError: assert 500 == 201\n +  where 500 = <Response [500]>.status_code",
				"client = <FlaskClient <Flask 'drover_api'>>\n\n    def test_create_pipeline(client):",
				"\n\ntests/test_api.py:27: AssertionError"},
			{"pytest", "tests.test_db", "test_migrate",
				`failed on setup with "psycopg.OperationalError: connection refused"`,
				"@pytest.fixture\n    def db():\n>       return psycopg.connect(DSN)",
				"tests/conftest.py:12: OperationalError"},
		}},
		{"pytest-legacy.xml", 2, 0, 1, 33 * time.Millisecond, nil},
		{"surefire.xml", 3, 2, 1, 2051 * time.Millisecond, []wantFailure{
			{"io.drover.agent.RunnerTest", "io.drover.agent.RunnerTest", "streamsLogs",
				"expected: <3> but was: <2>",
				"org.opentest4j.AssertionFailedError: expected: <3> but was: <2>\n\tat org.junit",
				"at io.drover.agent.RunnerTest.streamsLogs(RunnerTest.java:77)"},
			{"io.drover.agent.RunnerTest", "io.drover.agent.RunnerTest", "loadsConfig",
				"/etc/drover/agent.yaml (No such file or directory)",
				"java.io.FileNotFoundException: /etc/drover/agent.yaml",
				"at io.drover.agent.Config.load(Config.java:31)"},
		}},
		{"jest.xml", 3, 1, 1, 624 * time.Millisecond, []wantFailure{
			{"console/src/PipelineList.test.tsx", "PipelineList shows the last run status", "PipelineList shows the last run status",
				"Error: expect(element).toHaveTextContent()",
				"Error: expect(element).toHaveTextContent()\n\nExpected element to have text content:\n  passed\nReceived:\n  running\n    at Object.<anonymous>",
				"(node:internal/process/task_queues:95:5)"},
		}},
		{"nested.xml", 2, 2, 1, 852115 * time.Microsecond, []wantFailure{
			{`Drover\Tests\Unit\SlugTest`, "Drover.Tests.Unit.SlugTest", "testStripsSymbols",
				`Drover\Tests\Unit\SlugTest::testStripsSymbols`,
				"Drover\\Tests\\Unit\\SlugTest::testStripsSymbols\nFailed asserting that two strings are identical.\n--- Expected",
				"+'a--b'\n\n/work/tests/Unit/SlugTest.php:21"},
			{"Integration", "Drover.Tests.Integration.QueueTest", "testBoth", "boom", "", ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "junit", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseJUnit(f)
			if err != nil {
				t.Fatalf("ParseJUnit: %v", err)
			}
			if got.Passed != tt.passed || got.Failed != tt.failed || got.Skipped != tt.skipped {
				t.Errorf("passed/failed/skipped = %d/%d/%d, want %d/%d/%d",
					got.Passed, got.Failed, got.Skipped, tt.passed, tt.failed, tt.skipped)
			}
			if want := tt.passed + tt.failed + tt.skipped; got.Total() != want {
				t.Errorf("Total() = %d, want %d", got.Total(), want)
			}
			if got.Duration != tt.duration {
				t.Errorf("Duration = %v, want %v", got.Duration, tt.duration)
			}
			if len(got.Failures) != len(tt.failures) {
				t.Fatalf("got %d failures, want %d: %+v", len(got.Failures), len(tt.failures), got.Failures)
			}
			for i, w := range tt.failures {
				g := got.Failures[i]
				if g.Suite != w.suite || g.Class != w.class || g.Name != w.name {
					t.Errorf("failure %d is %q/%q/%q, want %q/%q/%q", i, g.Suite, g.Class, g.Name, w.suite, w.class, w.name)
				}
				if g.Message != w.message {
					t.Errorf("failure %d message = %q, want %q", i, g.Message, w.message)
				}
				if !strings.HasPrefix(g.Detail, w.detailPrefix) || !strings.HasSuffix(g.Detail, w.detailSuffix) {
					t.Errorf("failure %d detail = %q, want it to start with %q and end with %q", i, g.Detail, w.detailPrefix, w.detailSuffix)
				}
				if g.File != "" {
					t.Errorf("failure %d File = %q, want empty outside Collect", i, g.File)
				}
			}
		})
	}
}

func TestParseJUnitExactDetail(t *testing.T) {
	f, err := os.Open("testdata/junit/go-junit-report.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseJUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	want := "engine_test.go:88: step did not time out after 200ms\n    engine_test.go:89: got exit code 0, want 124"
	if got.Failures[0].Detail != want {
		t.Errorf("Detail = %q, want %q", got.Failures[0].Detail, want)
	}
}

func TestParseJUnitInline(t *testing.T) {
	tests := []struct {
		name, doc               string
		passed, failed, skipped int
		duration                time.Duration
		message                 string // of the first failure
	}{
		{"empty suites", `<testsuites/>`, 0, 0, 0, 0, ""},
		{"surefire thousands separator", `<testsuite><testcase name="slow" time="1,204.5"/></testsuite>`, 1, 0, 0, 1204500 * time.Millisecond, ""},
		{"bad and negative times ignored", `<testsuite><testcase time="abc"/><testcase time="-3"/><testcase time="NaN"/></testsuite>`, 3, 0, 0, 0, ""},
		{"only type attribute", `<testsuite><testcase name="a"><failure type="AssertionError"/></testcase></testsuite>`, 0, 1, 0, 0, "AssertionError"},
		{"empty message uses text", `<testsuite><testcase><error message=" ">  first line  
second</error></testcase></testsuite>`, 0, 1, 0, 0, "first line"},
		{"two failures counted once", `<testsuite><testcase><failure message="one"/><failure message="two"/></testcase></testsuite>`, 0, 1, 0, 0, "one"},
		{"flaky error passes", `<testsuite><testcase><flakyError message="x"/><rerunError message="y"/></testcase></testsuite>`, 1, 0, 0, 0, ""},
		{"namespaced", `<j:testsuites xmlns:j="urn:x"><j:testsuite><j:testcase><j:skipped/></j:testcase></j:testsuite></j:testsuites>`, 0, 0, 1, 0, ""},
		{"html entity", `<testsuite><testcase><failure message="a&nbsp;b"/></testcase></testsuite>`, 0, 1, 0, 0, "a\u00a0b"},
		{"testcase outside a suite", `<testsuites><testcase name="x"><failure message="m"/></testcase></testsuites>`, 0, 1, 0, 0, "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJUnit(strings.NewReader(tt.doc))
			if err != nil {
				t.Fatalf("ParseJUnit: %v", err)
			}
			if got.Passed != tt.passed || got.Failed != tt.failed || got.Skipped != tt.skipped || got.Duration != tt.duration {
				t.Errorf("got %d/%d/%d %v, want %d/%d/%d %v", got.Passed, got.Failed, got.Skipped, got.Duration,
					tt.passed, tt.failed, tt.skipped, tt.duration)
			}
			if len(got.Failures) != tt.failed {
				t.Fatalf("%d failures recorded, want %d", len(got.Failures), tt.failed)
			}
			if tt.failed > 0 && got.Failures[0].Message != tt.message {
				t.Errorf("message = %q, want %q", got.Failures[0].Message, tt.message)
			}
		})
	}
}

func TestParseJUnitErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"empty", "", "no root element"},
		{"not xml", "PASS\nok  \tgithub.com/drover-cd/drover\t0.01s\n", "no root element"},
		{"html", "<html><body>404 Not Found</body></html>", "root element is <html>"},
		{"cobertura", `<coverage lines-valid="1" lines-covered="1"/>`, "root element is <coverage>"},
		{"truncated", `<testsuite name="x"><testcase name="a">`, "unexpected EOF"},
		{"mismatched", `<testsuite><testcase></testsuite>`, "syntax error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJUnit(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "report: parsing JUnit XML: ") {
				t.Errorf("err = %q, want the report: prefix", err)
			}
		})
	}
}

func TestParseJUnitDetailCap(t *testing.T) {
	// "x" then two-byte runes: the cap falls in the middle of a rune.
	text := "x" + strings.Repeat("é", maxDetail)
	doc := `<testsuite><testcase><failure>` + "\n\n" + text + `</failure></testcase></testsuite>`
	got, err := ParseJUnit(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	d := got.Failures[0].Detail
	if len(d) != maxDetail-1 {
		t.Errorf("len(Detail) = %d, want %d", len(d), maxDetail-1)
	}
	if !utf8.ValidString(d) || !strings.HasPrefix(d, "xé") {
		t.Errorf("Detail is not a valid prefix of the text: %q...", d[:10])
	}
	if got.Failures[0].Message != d {
		t.Errorf("Message should be the single (capped) line of text")
	}
}

func TestTestsAdd(t *testing.T) {
	a := Tests{Passed: 1, Failed: 1, Duration: time.Second, Failures: []Failure{{Name: "a"}}}
	a.Add(Tests{Passed: 2, Skipped: 3, Failed: 1, Duration: 2 * time.Second, Failures: []Failure{{Name: "b"}}})
	if a.Passed != 3 || a.Failed != 2 || a.Skipped != 3 || a.Total() != 8 || a.Duration != 3*time.Second {
		t.Errorf("after Add: %+v", a)
	}
	if len(a.Failures) != 2 || a.Failures[0].Name != "a" || a.Failures[1].Name != "b" {
		t.Errorf("failures after Add: %+v", a.Failures)
	}
	var huge Tests
	huge.Add(Tests{Duration: time.Duration(1<<63 - 1)})
	huge.Add(Tests{Duration: time.Hour})
	if huge.Duration <= 0 {
		t.Errorf("Duration overflowed to %v", huge.Duration)
	}
}

// run.json files written before the failures' keys were snake_case still read.
func TestOldFailureKeysRead(t *testing.T) {
	var f Failure
	if err := json.Unmarshal([]byte(`{"Suite":"s","Class":"c","Name":"n","Message":"m","Detail":"d","File":"f"}`), &f); err != nil ||
		f != (Failure{"s", "c", "n", "m", "d", "f"}) {
		t.Errorf("%+v %v", f, err)
	}
	b, _ := json.Marshal(Failure{Name: "TestX", Message: "x_test.go:1: boom"})
	if !strings.Contains(string(b), `"name":"TestX"`) || !strings.Contains(string(b), `"message":`) {
		t.Errorf("%s", b)
	}
}
