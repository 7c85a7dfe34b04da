package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drover-cd/drover/artifact"
)

func TestDeployStepGetsTheArtifactTheRunEndsWith(t *testing.T) {
	var mu sync.Mutex
	var deployed []Deployment
	res, rec := runJob(t, newFake(), 2, `
steps:
  - {name: build, run: write dist/app v1, artifacts: [dist/]}
  - {name: staging, deploy: staging}
  - {name: smoke, run: echo smoke ok}
`, func(j *Job) {
		j.Artifacts, _ = artifact.Open(filepath.Join(j.Workspace, ".drover", "artifacts"))
		j.Deploy = func(ctx context.Context, d Deployment) error {
			mu.Lock()
			deployed = append(deployed, d)
			mu.Unlock()
			d.Log("switched " + d.Env)
			return nil
		}
	})
	if res.Status != Success || len(deployed) != 1 {
		t.Fatalf("run %s (%s), deployments %v", res.Status, statuses(res), deployed)
	}
	d := deployed[0]
	if d.Env != "staging" || d.Artifact == nil || res.Artifact == nil || d.Artifact.Digest != res.Artifact.Digest {
		t.Errorf("deployed %+v; the run's artifact is %+v", d, res.Artifact)
	}
	if got := rec.logs("staging"); len(got) != 1 || got[0] != "switched staging" {
		t.Errorf("deploy log: %q", got)
	}
}

func TestFailedDeployFailsTheRunAndSkipsWhatFollows(t *testing.T) {
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: build, run: write dist/app v1, artifacts: [dist/]}
  - {name: production, deploy: production}
  - {name: announce, run: echo released}
`, func(j *Job) {
		j.Artifacts, _ = artifact.Open(filepath.Join(j.Workspace, ".drover", "artifacts"))
		j.Deploy = func(context.Context, Deployment) error {
			return errors.New("catalog never became healthy: GET /healthz: 500")
		}
	})
	if s := result(t, res, "production"); res.Status != Failure || s.Status != Failure || !strings.Contains(s.Reason, "never became healthy") {
		t.Errorf("run %s; production %s %q", res.Status, s.Status, s.Reason)
	}
	if s := result(t, res, "announce"); s.Status != Skipped {
		t.Errorf("announce after a failed deploy: %s", s.Status)
	}
}

func TestDeployWithoutArtifactsSaysSo(t *testing.T) {
	res, _ := runJob(t, newFake(), 1, `
steps:
  - {name: build, run: echo built nothing}
  - {name: staging, deploy: staging}
`, func(j *Job) {
		j.Artifacts, _ = artifact.Open(filepath.Join(j.Workspace, ".drover", "artifacts"))
		j.Deploy = func(context.Context, Deployment) error { t.Error("Deploy called without an artifact"); return nil }
	})
	if s := result(t, res, "staging"); s.Status != Failure || !strings.Contains(s.Reason, "no step before this one published artifacts") {
		t.Errorf("staging: %s %q", s.Status, s.Reason)
	}
}
