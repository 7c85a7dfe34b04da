package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/store"
)

// lines collects log lines from several goroutines.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) add(s string) { l.mu.Lock(); l.all = append(l.all, s); l.mu.Unlock() }
func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// A service requiring one that runs nowhere in the environment is refused, naming what
// is missing and how to go ahead; one whose requires run there goes.
func TestRequiresRefusesWhatIsMissing(t *testing.T) {
	m, mk := liveSetup(t)
	err := m.checkRequires(context.Background(), "production", "web", []string{"catalog", "stock"}, tlog(t))
	var re *RequiresError
	if !errors.As(err, &re) || !errors.Is(err, ErrBadRequest) || strings.Join(re.Missing, ",") != "catalog,stock" {
		t.Fatalf("checkRequires with nothing running: %v", err)
	}
	for _, want := range []string{"web requires catalog and stock, which do not run in production", "--without-requires",
		"drover promote --from ENV --to production --all"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q: %v", want, err)
		}
	}
	catalog := named(mk("c1"), "catalog")
	if err := m.service("production", "catalog").deploy(context.Background(), catalog, &store.Deployment{ID: 1, Strategy: BlueGreen}, tlog(t)); err != nil {
		t.Fatal(err)
	}
	err = m.checkRequires(context.Background(), "production", "web", []string{"catalog", "stock"}, tlog(t))
	if !errors.As(err, &re) || strings.Join(re.Missing, ",") != "stock" || !strings.Contains(err.Error(), "stock, which does not run") {
		t.Errorf("with catalog running: %v", err)
	}
	// Other environments do not count.
	if got := m.Missing("staging", []string{"catalog"}); len(got) != 1 {
		t.Errorf("catalog of production counted for staging: missing %v", got)
	}
	if err := m.checkRequires(context.Background(), "production", "web", []string{"catalog"}, tlog(t)); err != nil {
		t.Errorf("with everything required running: %v", err)
	}
}

// A required service whose own deploy is under way is waited for, saying so: the
// approvals of a set given together, or a set promoted at once, do not race.
func TestRequiresWaitsForADeployUnderWay(t *testing.T) {
	m, mk := liveSetup(t)
	catalog := named(mk("c1"), "catalog")
	svc := m.service("production", "catalog")
	svc.deployMu.Lock() // catalog's deploy waits its turn until the check is waiting
	done := make(chan error, 1)
	go func() {
		done <- svc.deploy(context.Background(), catalog, &store.Deployment{ID: 1, Strategy: BlueGreen}, tlog(t))
	}()
	for !m.deploying("production", "catalog") {
		time.Sleep(5 * time.Millisecond)
	}
	log := &lines{}
	checked := make(chan error, 1)
	go func() {
		checked <- m.checkRequires(context.Background(), "production", "web", []string{"catalog"}, log.add)
	}()
	for !strings.Contains(log.String(), "waiting for catalog: it is being deployed to production") {
		time.Sleep(5 * time.Millisecond)
	}
	svc.deployMu.Unlock()
	if err := <-checked; err != nil {
		t.Fatalf("waiting for catalog's deploy: %v", err)
	}
	if !m.runs("production", "catalog") {
		t.Errorf("checkRequires returned before catalog ran")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A deploy under way that fails ends the wait with the refusal.
	stock := named(mk("s1"), "stock")
	os.WriteFile(filepath.Join(stock.dir, "dist", "unhealthy"), nil, 0o644)
	m.cfg.HealthTimeout = time.Second
	go func() {
		done <- m.service("production", "stock").deploy(context.Background(), stock, &store.Deployment{ID: 2, Strategy: BlueGreen}, tlog(t))
	}()
	for !m.deploying("production", "stock") {
		time.Sleep(5 * time.Millisecond)
	}
	var re *RequiresError
	if err := m.checkRequires(context.Background(), "production", "web", []string{"stock"}, tlog(t)); !errors.As(err, &re) {
		t.Errorf("after stock's deploy failed: %v", err)
	}
	if err := <-done; err == nil {
		t.Errorf("stock's unhealthy release deployed")
	}
}

// named is t as service name.
func named(t *target, name string) *target {
	svc := *t.service
	svc.Name = name
	t2 := *t
	t2.service, t2.name = &svc, name
	return &t2
}

// tlog is a deploy log that goes to the test's log.
func tlog(t *testing.T) func(string) { return func(l string) { t.Log(l) } }
