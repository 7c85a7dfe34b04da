package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

func testProjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	ps, err := s.Projects(ctx)
	if err != nil || len(ps) != 0 {
		t.Fatalf("Projects of an empty store = %v, %v; want none", ps, err)
	}

	want := map[string]*store.Project{}
	for _, name := range []string{"zeta", "alpha", "mid.app_2"} {
		p := &store.Project{Name: name, URL: "https://example.com/" + name + ".git",
			PollInterval: 90 * time.Second, WebhookSecret: "s3cret-" + name}
		if err := s.CreateProject(ctx, p); err != nil {
			t.Fatalf("CreateProject(%s): %v", name, err)
		}
		if p.ID == 0 {
			t.Errorf("CreateProject(%s) did not set ID", name)
		}
		checkCreated(t, "CreateProject("+name+")", p.Created)
		want[name] = p
	}
	if want["zeta"].ID == want["alpha"].ID {
		t.Errorf("two projects have ID %d", want["zeta"].ID)
	}
	// A project without URL or polling, as one hosted by Drover is.
	hosted := &store.Project{Name: "hosted"}
	if err := s.CreateProject(ctx, hosted); err != nil {
		t.Fatalf("CreateProject(hosted): %v", err)
	}
	want["hosted"] = hosted

	for name, w := range want {
		got, err := s.Project(ctx, name)
		if err != nil {
			t.Fatalf("Project(%s): %v", name, err)
		}
		checkProject(t, "Project("+name+")", got, w)
	}

	ps, err = s.Projects(ctx)
	if err != nil {
		t.Fatalf("Projects: %v", err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		checkProject(t, "Projects: "+p.Name, p, want[p.Name])
	}
	if wantNames := []string{"alpha", "hosted", "mid.app_2", "zeta"}; !reflect.DeepEqual(names, wantNames) {
		t.Errorf("Projects = %v, want %v", names, wantNames)
	}

	z := *want["zeta"]
	z.URL, z.PollInterval, z.WebhookSecret, z.KeepRuns, z.KeepFor = "https://example.com/moved.git", time.Minute, "", 7, 36*time.Hour
	z.DefaultBranch, z.BranchSecrets = "trunk", true
	if err := s.UpdateProject(ctx, &z); err != nil {
		t.Fatalf("UpdateProject(zeta): %v", err)
	}
	got, err := s.Project(ctx, "zeta")
	if err != nil {
		t.Fatalf("Project(zeta): %v", err)
	}
	checkProject(t, "Project(zeta) after UpdateProject", got, &z)
	checkProject(t, "Project(alpha) after zeta's UpdateProject", mustGet(t, s, "alpha"), want["alpha"])
	wantErr(t, "UpdateProject(missing)", s.UpdateProject(ctx, &store.Project{Name: "missing"}), store.ErrNotFound)
	z.DefaultBranch, z.BranchSecrets = "", false // and back
	if err := s.UpdateProject(ctx, &z); err != nil {
		t.Fatalf("UpdateProject(zeta): %v", err)
	}
	checkProject(t, "Project(zeta) after clearing its default branch", mustGet(t, s, "zeta"), &z)

	// Names differing only in case are one name to the registry.
	legacy := &store.Project{Name: "Shop-API"}
	if err := s.CreateProject(ctx, legacy); err != nil {
		t.Fatalf("CreateProject(Shop-API): %v", err)
	}
	for _, name := range []string{"shop-api", "SHOP-API", "Shop-API"} {
		got, err := s.ProjectFold(ctx, name)
		if err != nil || got.Name != "Shop-API" {
			t.Errorf("ProjectFold(%s) = %v, %v; want Shop-API", name, got, err)
		}
	}
	if got, err := s.ProjectFold(ctx, "ALPHA"); err != nil || got.Name != "alpha" {
		t.Errorf("ProjectFold(ALPHA) = %v, %v; want alpha", got, err)
	}
	_, err = s.ProjectFold(ctx, "shop_api")
	wantErr(t, "ProjectFold(shop_api)", err, store.ErrNotFound)
	_, err = s.ProjectFold(ctx, "%")
	wantErr(t, "ProjectFold(%)", err, store.ErrNotFound)
}

func mustGet(t *testing.T, s store.Store, name string) *store.Project {
	t.Helper()
	p, err := s.Project(t.Context(), name)
	if err != nil {
		t.Fatalf("Project(%s): %v", name, err)
	}
	return p
}

// checkProject fails unless got equals want in every field.
func checkProject(t *testing.T, what string, got, want *store.Project) {
	t.Helper()
	if got == nil || want == nil {
		t.Errorf("%s: got %v, want %v", what, got, want)
		return
	}
	g, w := *got, *want
	sameTimes(t, what, []string{"Created"}, []*time.Time{&g.Created}, []*time.Time{&w.Created})
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func testProjectDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := mustProject(t, s, "app")
	dup := &store.Project{Name: "app", URL: "https://elsewhere.example/app.git"}
	wantErr(t, "CreateProject of a taken name", s.CreateProject(ctx, dup), store.ErrExists)

	got, err := s.Project(ctx, "app")
	if err != nil {
		t.Fatalf("Project(app): %v", err)
	}
	checkProject(t, "Project(app) after a duplicate", got, first)
	if ps, err := s.Projects(ctx); err != nil || len(ps) != 1 {
		t.Errorf("Projects after a duplicate = %d projects, %v; want 1", len(ps), err)
	}
	// Names are compared exactly: another case is another project.
	if err := s.CreateProject(ctx, &store.Project{Name: "App"}); err != nil {
		t.Errorf("CreateProject(App) after app: %v", err)
	}
}
