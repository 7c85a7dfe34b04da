package deploy

import (
	"testing"

	"github.com/drover-cd/drover/pipeline"
	"github.com/drover-cd/drover/store"
)

func TestEphemeralName(t *testing.T) {
	for project, want := range map[string]string{
		"shop":       "eph-shop-12",
		"My_Shop.v2": "eph-my-shop-v2-12",
		"a-very-long-project-name-that-goes-on-and-on-and-on-forever-x": "very-long-project-name-that-goes-on-and-on-and-on-forever-x-12",
	} {
		got := EphemeralName(project, 12)
		if got != want || !validEnvName(got) {
			t.Errorf("EphemeralName(%q) = %q (valid %v), want %q", project, got, validEnvName(got), want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for svc, want := range map[string]string{"inventory": "INVENTORY", "user-api": "USER_API", "svc.v2": "SVC_V2"} {
		if got := envName(svc); got != want {
			t.Errorf("envName(%q) = %q, want %q", svc, got, want)
		}
	}
}

func TestDifferencesNameWhatChanges(t *testing.T) {
	cur := &store.Environment{Name: "production", Strategy: "blue-green", Replicas: 2}
	spec := &pipeline.EnvironmentSpec{Name: "production", Strategy: "rolling", Track: "main", Replicas: 2, Approval: "release-manager"}
	want := "strategy blue-green → rolling, track none → main, approval none → release-manager"
	if got := differences(cur, spec); got != want {
		t.Errorf("differences = %q, want %q", got, want)
	}
	same := &pipeline.EnvironmentSpec{Name: "production", Strategy: "blue-green", Replicas: 2}
	if got := differences(cur, same); got != "" {
		t.Errorf("no change gave %q", got)
	}
}

func TestWithReplicas(t *testing.T) {
	t0 := &target{service: &pipeline.Service{Replicas: 2}}
	if withReplicas(t0, 2) != t0 {
		t.Error("the count it has changed the target")
	}
	t3 := withReplicas(t0, 3)
	if t3.service.Replicas != 3 || t0.service.Replicas != 2 {
		t.Errorf("withReplicas: %d, original %d", t3.service.Replicas, t0.service.Replicas)
	}
}
