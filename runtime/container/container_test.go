package container

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/docker/dockertest"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/runtime"
)

func TestInstanceServesOnLoopbackWithLimitsAndStops(t *testing.T) {
	e := dockertest.Engine(t, docker.Registry{})
	img := dockertest.BuildBusybox(t, e)
	rt := &Runtime{Engine: func(context.Context) (*docker.Engine, error) { return e, nil }, Network: "drover-test-" + strings.ToLower(rand.Text()[:8])}
	ctx := context.Background()
	inst, err := rt.Start(ctx, runtime.Spec{
		Name:    "web.test.1",
		Image:   img,
		Command: `mkdir -p /srv && echo "hello from $GREETING on $HOST:$PORT" > /srv/index.html && echo started && exec httpd -f -p $PORT -h /srv`,
		Env:     []string{"GREETING=drover", "PATH=/host/only"},
		CPUs:    0.5, Memory: 64 << 20, StopTimeout: 2 * time.Second,
		Aliases: []string{"web.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := getRoot(inst.Addr())
	if body != "hello from drover on 0.0.0.0:8080\n" {
		t.Fatalf("GET %s: %q", inst.Addr(), body)
	}
	c, err := e.Inspect(ctx, inst.(*instance).ID())
	if err != nil {
		t.Fatal(err)
	}
	for port, binds := range c.HostConfig.PortBindings {
		for _, b := range binds {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("port %s published on %q: instances publish on loopback only", port, b.HostIP)
			}
		}
	}
	if c.HostConfig.NanoCPUs != 5e8 || c.HostConfig.Memory != 64<<20 {
		t.Errorf("limits: %d nano-CPUs, %d bytes; want 0.5 CPU and 64 MiB", c.HostConfig.NanoCPUs, c.HostConfig.Memory)
	}
	if got := strings.Join(inst.Tail(5), "|"); got != "started" {
		t.Errorf("tail %q, want started", got)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-inst.Done()
	if !errors.Is(inst.Err(), runtime.ErrStopped) {
		t.Errorf("Err after Stop: %v, want ErrStopped", inst.Err())
	}
	if ok, err := e.Exists(ctx, inst.(*instance).ID()); err != nil || ok {
		t.Errorf("the stopped instance's container is still there (err %v)", err)
	}
}

func TestKilledContainerReportsItsExit(t *testing.T) {
	e := dockertest.Engine(t, docker.Registry{})
	img := dockertest.BuildBusybox(t, e)
	rt := &Runtime{Engine: func(context.Context) (*docker.Engine, error) { return e, nil }, Network: "drover-test-" + strings.ToLower(rand.Text()[:8])}
	inst, err := rt.Start(context.Background(), runtime.Spec{Name: "kill.test.1", Image: img, Command: "exec sleep 60"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Kill(context.Background(), inst.(*instance).ID(), "KILL"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("Done not closed after the container was killed")
	}
	if err := inst.Err(); err == nil || errors.Is(err, runtime.ErrStopped) || !strings.Contains(err.Error(), "signal 9") {
		t.Errorf("Err %v, want signal 9 and not ErrStopped", err)
	}
}

func TestSecretsAreMaskedInAContainersOutput(t *testing.T) {
	e := dockertest.Engine(t, docker.Registry{})
	img := dockertest.BuildBusybox(t, e)
	rt := &Runtime{Engine: func(context.Context) (*docker.Engine, error) { return e, nil }, Network: "drover-test-" + strings.ToLower(rand.Text()[:8])}
	logFile := filepath.Join(t.TempDir(), "secret.log")
	inst, err := rt.Start(context.Background(), runtime.Spec{Name: "secret.test.1", Image: img, LogFile: logFile,
		Command: `echo "key is $API_KEY"; printf '%s' "$API_KEY" | base64; printf 'ends with %s' "$API_KEY"`,
		Env:     []string{"API_KEY=k3y-of-the-catalog"}, Masker: mask.New([]string{"k3y-of-the-catalog"})})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the container did not exit")
	}
	want := "key is ***|***|ends with ***"
	if got := strings.Join(inst.Tail(5), "|"); got != want {
		t.Errorf("tail %q, want %q", got, want)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "k3y") || !strings.Contains(string(data), "key is ***") {
		t.Errorf("log file %q", data)
	}
}

// getRoot GETs / of the instance at addr, trying for up to 10s while it starts, and
// returns the body ("" when nothing answered).
func getRoot(addr string) string {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
	}
	return ""
}
