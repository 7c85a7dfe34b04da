package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestReleaseFlowWithThreeServices follows one change of a service that requires two
// others from push to production: tests against an ephemeral environment holding the
// others at their staging releases, staging, an approval, production, one digest.
func TestReleaseFlowWithThreeServices(t *testing.T) {
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	for _, name := range []string{"users", "stock"} {
		repo := gitRepo(t, servicePipeline(bin, name, name+"-v1", "", ""))
		git(t, repo, "push", "-q", s.pushURL(name), "main")
		if run := s.waitRun(name, 1, finished); run.Status != "success" {
			t.Fatalf("%s: %+v", name, run)
		}
	}
	shop := gitRepo(t, fmt.Sprintf(`
service:
  name: shop
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
  requires: [users, stock]
steps:
  - name: build
    run: mkdir -p dist && cp %[1]s dist/websvc && echo shop-v1 > dist/version
    artifacts: [dist]
  - name: api-test
    environment: ephemeral
    run: |
      %[1]s get "$USERS_URL/" | grep -q "users-v1 eph-shop-1"
      %[1]s get "$STOCK_URL/" | grep -q "stock-v1 eph-shop-1"
      %[1]s get "$SHOP_URL/" | grep -q "shop-v1 eph-shop-1"
  - name: staging
    deploy: staging
  - name: go-live
    approval: {role: release-manager}
  - name: production
    deploy: production
`, bin))
	git(t, shop, "push", "-q", s.pushURL("shop"), "main")
	run := s.waitRun("shop", 1, func(r apiRun) bool { return r.Status == "waiting" })
	if run.Steps[1].Status != "success" || run.Steps[2].Status != "success" {
		t.Fatalf("before the approval: %+v\n%s", run, s.log)
	}
	s.waitBody("shop", "staging", "shop-v1 staging")

	// shop requires users and stock: they go to production first (an admin may).
	for _, p := range []string{"users", "stock"} {
		if res := s.as(s.Token, "promote", p, "--from", "staging", "--to", "production"); res.code != 0 {
			t.Fatalf("promote %s: %s", p, res)
		}
	}
	// Refused without the role, approved through the API with it.
	dev := strings.TrimSpace(drover(t, "", "token", "create", "--role", "developer", "--server", s.URL, "--token", s.Token).stdout)
	rm := strings.TrimSpace(drover(t, "", "token", "create", "--role", "viewer", "--approves", "release-manager",
		"--server", s.URL, "--token", s.Token).stdout)
	if code := s.api("POST", "/api/v1/projects/shop/runs/1/approve", dev, map[string]string{}, nil); code != 403 {
		t.Errorf("approval without the role: %d, want 403", code)
	}
	if code := s.api("POST", "/api/v1/projects/shop/runs/1/approve", rm, map[string]string{"message": "staging looks right"}, nil); code != 200 {
		t.Fatalf("approval: %d", code)
	}
	if run := s.waitRun("shop", 1, finished); run.Status != "success" {
		t.Fatalf("after the approval: %+v\n%s", run, s.log)
	}
	s.waitBody("shop", "production", "shop-v1 production")

	// What runs in staging and production is the release, byte for byte.
	var rel apiRelease
	s.api("GET", "/api/v1/projects/shop/releases/r1", "", nil, &rel)
	digests := map[string]string{}
	for _, env := range []string{"staging", "production"} {
		var e struct {
			Services []struct{ Service, Digest string }
		}
		s.api("GET", "/api/v1/environments/"+env, "", nil, &e)
		for _, svc := range e.Services {
			if svc.Service == "shop" {
				digests[env] = svc.Digest
			}
		}
	}
	if rel.Digest == "" || digests["staging"] != rel.Digest || digests["production"] != rel.Digest {
		t.Errorf("release r1 is %s; staging runs %s, production %s", rel.Digest, digests["staging"], digests["production"])
	}
	// The releases page says where the release runs.
	if page := s.text("/p/shop/releases"); !strings.Contains(page, `<a href="/env/production">production</a>`) ||
		!strings.Contains(page, `<a href="/env/staging">staging</a>`) {
		t.Errorf("the releases page does not say where r1 runs:\n%s", page)
	}
}
