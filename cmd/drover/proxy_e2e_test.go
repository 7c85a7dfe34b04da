package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testProxy is a `drover proxy` process started by a test.
type testProxy struct {
	t    *testing.T
	cmd  *exec.Cmd
	URL  string // http://HOST:PORT it serves on
	log  *syncBuffer
	done chan struct{}
}

var proxyServing = regexp.MustCompile(`serving \d+ routes on (http://[^/\s]+)/`)

// startProxy runs drover proxy following s with token, named name, keeping its table in
// state.
func startProxy(t *testing.T, s *testServer, token, name, state string, extra ...string) *testProxy {
	t.Helper()
	p := &testProxy{t: t, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(droverBin, append([]string{"proxy", "--server", s.URL, "--token", token, "--listen", "127.0.0.1:0",
		"--name", name, "--state", state}, extra...)...)
	p.cmd.Env = append(os.Environ(), "NO_COLOR=1")
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	var wg sync.WaitGroup
	scan := func(r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.log.WriteString(sc.Text() + "\n")
			if m := proxyServing.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}
	wg.Add(2)
	go scan(stdout)
	go scan(stderr)
	go func() { wg.Wait(); p.cmd.Wait(); close(p.done) }()
	select {
	case p.URL = <-found:
	case <-p.done:
		t.Fatalf("drover proxy ended:\n%s", p.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("drover proxy did not start:\n%s", p.log)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends the proxy with SIGTERM and returns its exit code.
func (p *testProxy) stop() int {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.cmd.ProcessState.ExitCode()
}

// get GETs / of service.env through the proxy.
func (p *testProxy) get(service, env string) (int, string, error) {
	return getVia(p.URL, service, env, "/")
}

// waitBody polls the service through the proxy until its body is want.
func (p *testProxy) waitBody(service, env, want string) {
	p.t.Helper()
	waitBodyVia(p.t, p.URL, service, env, want, p.log)
}

// proxyLoad sends requests through proxies until ended, counting failures.
type proxyLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func startProxyLoad(service, env string, clients int, proxies ...*testProxy) *proxyLoad {
	l := &proxyLoad{stop: make(chan struct{})}
	for i := range clients {
		p := proxies[i%len(proxies)]
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := p.get(service, env)
				if err != nil || code != 200 {
					l.fail.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, fmt.Sprintf("%s: %d %q %v", p.URL, code, body, err))
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

func (l *proxyLoad) end() { close(l.stop); l.wg.Wait() }

// Issue 17: two standalone proxies follow one server's route table and serve a service
// with two instances under 50 connections without one failed request while the server
// is stopped and started again, killed and started again, and down for 30 s; after
// each, the server has adopted the same instances and kept the deploy history. A deploy
// has switched both proxies when its API call answers. A proxy token reads routes and
// nothing else.
func TestStandaloneProxiesOutliveTheServer(t *testing.T) {
	t.Parallel()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "")
	repo := s.deliver("web", servicePipeline(bin, "web", "v1", "", ""))
	s.waitBody("web", "staging", "v1 staging")
	t.Cleanup(func() { s.as(s.Token, "env", "stop", "--all") })

	token := s.mint("--machine", "proxy")
	if code := s.api("GET", "/api/v1/environments", token, nil, nil); code != http.StatusForbidden {
		t.Errorf("GET /api/v1/environments with a proxy token: %d, want 403", code)
	}
	// A token the server refuses, and nothing kept to serve: it says so and ends.
	bad := drover(t, t.TempDir(), "proxy", "--server", s.URL, "--token", "wrong", "--listen", "127.0.0.1:0")
	if bad.code == 0 || !strings.Contains(bad.stderr, "refused the token") || !strings.Contains(bad.stderr, "drover token create --machine proxy") {
		t.Errorf("drover proxy with a wrong token: %s", bad)
	}
	edge1 := startProxy(t, s, token, "edge-1", t.TempDir())
	edge2 := startProxy(t, s, token, "edge-2", t.TempDir())
	edge1.waitBody("web", "staging", "v1 staging")
	edge2.waitBody("web", "staging", "v1 staging")
	pids := s.pidsOf("staging", "web")
	history := len(s.env("staging").Deployments)

	addr := strings.TrimPrefix(s.URL, "http://")
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		down time.Duration
	}{{"SIGTERM and start", syscall.SIGTERM, 0}, {"kill -9 and start", syscall.SIGKILL, 0}, {"down for 30 s", syscall.SIGTERM, 30 * time.Second}} {
		l := startProxyLoad("web", "staging", 50, edge1, edge2)
		time.Sleep(300 * time.Millisecond)
		s.stop(c.sig)
		time.Sleep(c.down)
		s.start("--listen", addr)
		s.waitBody("web", "staging", "v1 staging")
		time.Sleep(1500 * time.Millisecond) // the proxies follow the restarted server
		l.end()
		if l.fail.Load() != 0 || l.ok.Load() == 0 {
			t.Errorf("%s: %d ok, %d failed %v", c.name, l.ok.Load(), l.fail.Load(), l.errs)
		}
		if got := s.pidsOf("staging", "web"); !slices.Equal(got, pids) {
			t.Errorf("%s: web runs %v, ran %v", c.name, got, pids)
		}
		if n := len(s.env("staging").Deployments); n != history {
			t.Errorf("%s: the history has %d entries, had %d", c.name, n, history)
		}
	}
	for _, p := range []*testProxy{edge1, edge2} {
		if !strings.Contains(p.log.String(), "server is back") {
			t.Errorf("%s did not follow the restarted server:\n%s", p.URL, p.log)
		}
	}

	// A deploy answers once both proxies switched: right after it, neither routes to the
	// old release, whose instances it stopped.
	s.commitPipeline(repo, "web", servicePipeline(bin, "web", "v2", "", ""))
	if run := s.waitRun("web", 2, finished); run.Status != "success" {
		t.Fatalf("web run 2: %+v\n%s", run, s.log)
	}
	if res := s.as(s.Token, "deploy", "web:1", "--env", "staging"); res.code != 0 {
		t.Fatalf("deploy web:1: %s", res)
	}
	for _, p := range []*testProxy{edge1, edge2} {
		if code, body, err := p.get("web", "staging"); code != 200 || body != "v1 staging" {
			t.Errorf("%s right after the deploy answered: %d %q %v", p.URL, code, body, err)
		}
	}

	for _, p := range []*testProxy{edge1, edge2} {
		if code := p.stop(); code != 0 {
			t.Errorf("drover proxy on SIGTERM: exit %d\n%s", code, p.log)
		}
	}
}

// With the server's --external-discovery and a proxy's --discovery, a service reaches
// the one it requires through <NAME>_URL while the server is down.
func TestDiscoveryThroughTheProxyOutlivesTheServer(t *testing.T) {
	t.Parallel()
	bin, err := websvcBin()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", "--external-discovery")
	t.Cleanup(func() { s.as(s.Token, "env", "stop", "--all") })
	edge := startProxy(t, s, s.mint("--machine", "proxy"), "edge", t.TempDir(), "--discovery")
	s.deliver("api", servicePipeline(bin, "api", "api-v1", "", ""))
	s.deliver("web", servicePipeline(bin, "web", "v1", "api", ""))
	up := func() (int, string, error) { return getVia(edge.URL, "web", "staging", "/up") }
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, body, _ := up(); code == 200 && body == "api-v1 staging" {
			break
		}
		if time.Now().After(deadline) {
			code, body, err := up()
			t.Fatalf("web never reached api through the proxy: %d %q %v\n%s", code, body, err, edge.log)
		}
	}
	s.stop(syscall.SIGKILL)
	for range 20 {
		if code, body, err := up(); code != 200 || body != "api-v1 staging" {
			t.Fatalf("with the server down, web reaching api: %d %q %v", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
