package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// vault is a Job.Secrets over a map, recording what it was asked.
type vault struct {
	values map[string]string
	asked  []SecretRequest
}

func (v *vault) resolve(_ context.Context, req SecretRequest) ([]string, error) {
	v.asked = append(v.asked, req)
	var out []string
	for _, n := range req.Names {
		val, ok := v.values[n]
		if !ok {
			return nil, fmt.Errorf("secret %s is not set for step %q (environment %q)", n, req.Step, req.Environment)
		}
		out = append(out, n+"="+val)
	}
	return out, nil
}

func TestStepsGetTheSecretsTheyAskForAndNoOthers(t *testing.T) {
	v := &vault{values: map[string]string{"DB_PASSWORD": "hunter2-sesame", "API_KEY": "k3y-0f-the-api"}}
	res, rec := runJob(t, newFake(), 1, `
env: {DB_PASSWORD: from-the-file}
steps:
  - name: asks
    secrets: [DB_PASSWORD]
    run: env DB_PASSWORD; env API_KEY
  - name: asks-not
    run: env DB_PASSWORD; env API_KEY
  - name: staging
    secrets: [API_KEY]
    environment: staging
    run: env API_KEY
`, func(j *Job) {
		j.Secrets = v.resolve
		j.Environment = func(context.Context, EnvRequest) (*EnvLease, error) { return &EnvLease{}, nil }
	})
	if res.Status != Success {
		t.Fatalf("status %s: %s", res.Status, statuses(res))
	}
	// The value reaches the step (over env:) but its output shows it masked.
	if got := rec.logs("asks"); !slices.Equal(got, []string{"DB_PASSWORD=***", "API_KEY="}) {
		t.Errorf("asks printed %q", got)
	}
	if got := rec.logs("asks-not"); !slices.Equal(got, []string{"DB_PASSWORD=from-the-file", "API_KEY="}) {
		t.Errorf("a step that asked for nothing got %q", got)
	}
	if len(v.asked) != 2 || v.asked[0].Environment != "" || v.asked[1].Environment != "staging" || v.asked[1].Step != "staging" {
		t.Errorf("asked %+v", v.asked)
	}
}

func TestSecretsAreMaskedInEveryForm(t *testing.T) {
	secret := "p@ss word/with:odd=chars"
	v := &vault{values: map[string]string{"TOKEN": secret}}
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	res, rec := runJob(t, newFake(), 1, `
steps:
  - name: writes
    secrets: [TOKEN]
    run: write leak.txt `+secret+`; echo `+b64+`; echo p%40ss+word%2Fwith%3Aodd%3Dchars; exit 3
    allow_failure: true
  - name: later
    run: echo a later step prints `+secret+` from the workspace
`, func(j *Job) { j.Secrets = v.resolve })
	if res.Status != Success {
		t.Fatalf("status %s: %s", res.Status, statuses(res))
	}
	all := strings.Join(append(rec.logs("writes"), rec.logs("later")...), "\n")
	for _, form := range []string{secret, b64, "p%40ss+word%2Fwith%3Aodd%3Dchars"} {
		if strings.Contains(all, form) {
			t.Errorf("output shows %q:\n%s", form, all)
		}
	}
	if got := rec.logs("later"); !slices.Equal(got, []string{"a later step prints *** from the workspace"}) {
		t.Errorf("later printed %q", got)
	}
}

func TestAMissingSecretFailsTheStepBeforeItStarts(t *testing.T) {
	v := &vault{values: map[string]string{}}
	f := newFake()
	res, rec := runJob(t, f, 1, `
steps:
  - name: migrate
    secrets: [DB_PASSWORD]
    environment: ephemeral
    run: echo started
`, func(j *Job) {
		j.Secrets = v.resolve
		j.Environment = func(context.Context, EnvRequest) (*EnvLease, error) {
			t.Error("an environment was made for a step whose secret is missing")
			return &EnvLease{}, nil
		}
	})
	s := result(t, res, "migrate")
	if res.Status != Failure || s.Status != Failure || !strings.Contains(s.Reason, "DB_PASSWORD") || !strings.Contains(s.Reason, `"migrate"`) {
		t.Fatalf("run %s, step %s: %q", res.Status, s.Status, s.Reason)
	}
	if len(rec.logs("migrate")) != 0 || f.spans["migrate"] != [2]time.Time{} {
		t.Error("the step ran")
	}
}

func TestSecretsNeedAServer(t *testing.T) {
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: s, secrets: [DB_PASSWORD], run: echo x}
`, nil)
	if s := result(t, res, "s"); s.Status != Failure || !strings.Contains(s.Reason, "need a server") {
		t.Fatalf("%s: %q", s.Status, s.Reason)
	}
}

func TestReasonsAndNotesAreMasked(t *testing.T) {
	v := &vault{values: map[string]string{"TOKEN": "sekrit-value-123"}}
	f := newFake()
	res, _ := runJob(t, f, 1, `
steps:
  - {name: a, secrets: [TOKEN], run: echo hi}
  - {name: b, run: bogus sekrit-value-123}
`, func(j *Job) { j.Secrets = v.resolve })
	s := result(t, res, "b")
	if s.Status != Errored || strings.Contains(s.Reason, "sekrit-value-123") || !strings.Contains(s.Reason, "***") {
		t.Fatalf("%s: %q", s.Status, s.Reason)
	}
}

func TestTestFailuresInReportsAreMasked(t *testing.T) {
	v := &vault{values: map[string]string{"TOKEN": "sekrit-value-123"}}
	junit := `<testsuite><testcase name="TestLogin"><failure message="login with sekrit-value-123 refused">got sekrit-value-123</failure></testcase></testsuite>`
	res, _ := runJob(t, newFake(), 1, `
steps:
  - name: test
    secrets: [TOKEN]
    run: write report.xml `+junit+`
    reports: {junit: report.xml}
`, func(j *Job) { j.Secrets = v.resolve })
	s := result(t, res, "test")
	if s.Reports == nil || s.Reports.Tests == nil || len(s.Reports.Tests.Failures) != 1 {
		t.Fatalf("reports: %+v", s.Reports)
	}
	f := s.Reports.Tests.Failures[0]
	if strings.Contains(f.Message+f.Detail, "sekrit") || !strings.Contains(f.Message, "***") {
		t.Errorf("failure %+v", f)
	}
}

// A step already running when another is handed a secret still has it masked: it may
// read what the other wrote to the workspace.
func TestSecretsHandedOutLaterAreMaskedInRunningSteps(t *testing.T) {
	v := &vault{values: map[string]string{"TOKEN": "sekrit-value-123"}}
	res, rec := runJob(t, newFake(), 2, `
steps:
  - {name: early, needs: [], run: sleep 100ms; echo read sekrit-value-123 from the workspace}
  - {name: asks, needs: [], secrets: [TOKEN], run: echo hi}
`, func(j *Job) { j.Secrets = v.resolve })
	if res.Status != Success {
		t.Fatal(statuses(res))
	}
	if got := rec.logs("early"); !slices.Equal(got, []string{"read *** from the workspace"}) {
		t.Errorf("early printed %q", got)
	}
}

// Values the caller hides from the start (drover run's) are masked in every step.
func TestHiddenValuesAreMaskedFromTheStart(t *testing.T) {
	res, rec := runJob(t, newFake(), 1, `
steps:
  - {name: a, run: echo known-before-any-step}
`, func(j *Job) { j.Hidden = []string{"known-before-any-step"} })
	if res.Status != Success || !slices.Equal(rec.logs("a"), []string{"***"}) {
		t.Errorf("%s: %q", statuses(res), rec.logs("a"))
	}
}
