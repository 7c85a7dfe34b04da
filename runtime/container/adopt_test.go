package container

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
)

// startCommand makes the test binary a server that starts one instance and exits at
// once, as a server that restarts does: `BIN start-instance OWNER NETWORK IMAGE`; it
// prints the instance's address.
const startCommand = "start-instance"

func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == startCommand {
		os.Exit(startMain(os.Args[2], os.Args[3], os.Args[4]))
	}
	os.Exit(m.Run())
}

func startMain(owner, network, img string) int {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &Runtime{Engine: docker.Lazy(owner, docker.Registry{}), Network: network}
	inst, err := rt.Start(ctx, runtime.Spec{
		Name: "adopt.test.1", Image: img, StopTimeout: 2 * time.Second,
		Labels:  map[string]string{"service": "web", "generation": "4"},
		Env:     []string{"TOKEN=s3cret-value"},
		Command: `mkdir -p /srv && echo ok > /srv/index.html && echo "started with $TOKEN" && exec httpd -f -p $PORT -h /srv`,
	})
	cancel() // Start's context bounds the start only
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(inst.Addr())
	return 0
}

func TestRunningContainersAreAdoptedWithTheirLabels(t *testing.T) {
	owner := dockertest.Owner(t)
	e, err := docker.Connect(context.Background(), owner, docker.Registry{})
	if err != nil {
		dockertest.Skip(t, err.Error())
	}
	t.Cleanup(func() {
		if _, err := e.RemoveLeftovers(context.Background(), nil); err != nil {
			t.Errorf("remove the test's containers: %v", err)
		}
		e.Close()
	})
	img := dockertest.BuildBusybox(t, e)
	network := "drover-test-" + strings.ToLower(rand.Text()[:8])
	engine := func(context.Context) (*docker.Engine, error) { return e, nil }
	labels := map[string]string{"service": "web", "generation": "4"}
	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], startCommand, owner, network, img)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("server: %v: %s", err, stderr.String())
	}
	addr := strings.TrimSpace(string(out))

	// A container that exited while no server watched: Adopt removes it.
	exitedID, err := e.Create(context.Background(), docker.Container{Name: "drover-gone.test.1", Image: img,
		Entrypoint: []string{"/bin/sh", "-c", "exit 3"}, Labels: map[string]string{LabelInstance: "gone.test.1"}})
	if err != nil {
		t.Fatal(err)
	}
	exited := e.Wait(context.Background(), exitedID)
	if err := e.Start(context.Background(), exitedID); err != nil {
		t.Fatal(err)
	}
	<-exited

	// A restarted server: a new Runtime on the same engine owner.
	rt := &Runtime{Engine: engine, Network: network,
		Masker: func(map[string]string) *mask.Masker { return mask.New([]string{"s3cret-value"}) }}
	adopted, err := rt.Adopt(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(adopted) != 1 {
		t.Fatalf("adopted %d instances, want 1", len(adopted))
	}
	a := adopted[0]
	inst := a.Instance
	if inst.Name() != "adopt.test.1" || inst.Addr() != addr || !maps.Equal(a.Labels, labels) {
		t.Errorf("adopted %s at %s with %v; want adopt.test.1 at %s with %v", inst.Name(), inst.Addr(), a.Labels, addr, labels)
	}
	if time.Since(a.Started) > time.Minute || a.Started.After(time.Now()) {
		t.Errorf("started %s", a.Started)
	}
	if ok, err := e.Exists(context.Background(), exitedID); err != nil || ok {
		t.Errorf("the exited instance's container is still there (err %v)", err)
	}
	body := getRoot(inst.Addr())
	if body != "ok\n" {
		t.Errorf("GET the adopted instance: %q", body)
	}
	if got := strings.Join(inst.Tail(5), "|"); got != "started with ***" {
		t.Errorf("Tail %q, want the masked output from before the adoption", got)
	}

	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-inst.Done()
	if !errors.Is(inst.Err(), runtime.ErrStopped) {
		t.Errorf("Err after Stop: %v, want ErrStopped", inst.Err())
	}
	if got := strings.Join(inst.Tail(5), "|"); got != "started with ***" {
		t.Errorf("Tail after the container went: %q", got)
	}
	if ok, err := e.Exists(context.Background(), inst.(*instance).ID()); err != nil || ok {
		t.Errorf("the stopped container is still there (err %v)", err)
	}
}
