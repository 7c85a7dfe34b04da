package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fast probes every 10ms; the per-probe timeout stays generous so that a loaded machine
// does not turn passes into failures.
func fast(path string) Config {
	return Config{Path: path, Interval: 10 * time.Millisecond, Timeout: 5 * time.Second}
}

// server answers with the status code in *code and counts the answers by code.
type server struct {
	code  atomic.Int32
	hits  [600]atomic.Int64
	paths chan string
	addr  string
}

func newServer(t *testing.T, code int) *server {
	s := &server{paths: make(chan string, 1)}
	s.code.Store(int32(code))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.paths <- r.URL.Path:
		default:
		}
		code := int(s.code.Load())
		s.hits[code].Add(1)
		if code/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	return s
}

func start(t *testing.T, addr string, cfg Config) *Checker {
	c := Start(context.Background(), addr, cfg)
	t.Cleanup(c.Stop)
	return c
}

// next is the next change, failing the test when none comes in a time no working
// checker needs.
func next(t *testing.T, c *Checker) State {
	t.Helper()
	select {
	case s := <-c.Changes():
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("no change; state %s, last error %q", c.State(), c.LastError())
		return Unknown
	}
}

func wait(t *testing.T, c *Checker) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return WaitHealthy(ctx, c)
}

func TestBecomesHealthy(t *testing.T) {
	s := newServer(t, http.StatusOK)
	c := start(t, s.addr, fast("healthz")) // the leading slash is added
	if err := wait(t, c); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	if c.State() != Healthy || c.LastError() != "" {
		t.Errorf("state %s, last error %q", c.State(), c.LastError())
	}
	if got := next(t, c); got != Healthy {
		t.Errorf("first change %s, want healthy", got)
	}
	if got := <-s.paths; got != "/healthz" {
		t.Errorf("probed %q, want /healthz", got)
	}
}

func TestUnhealthyAfterThresholdAndBack(t *testing.T) {
	s := newServer(t, http.StatusOK)
	cfg := fast("/up")
	cfg.HealthyThreshold, cfg.UnhealthyThreshold = 2, 3
	c := start(t, s.addr, cfg)
	if got := next(t, c); got != Healthy {
		t.Fatalf("first change %s, want healthy", got)
	}
	if n := s.hits[200].Load(); n < 2 {
		t.Errorf("healthy after %d passes, want at least 2", n)
	}

	s.code.Store(http.StatusServiceUnavailable)
	if got := next(t, c); got != Unhealthy {
		t.Fatalf("change %s, want unhealthy", got)
	}
	if n := s.hits[503].Load(); n < 3 {
		t.Errorf("unhealthy after %d failures, want at least 3", n)
	}
	if want := "GET /up: 503 Service Unavailable"; c.LastError() != want {
		t.Errorf("last error %q, want %q", c.LastError(), want)
	}

	passes := s.hits[200].Load()
	s.code.Store(http.StatusOK)
	if got := next(t, c); got != Healthy {
		t.Fatalf("change %s, want healthy again", got)
	}
	if n := s.hits[200].Load() - passes; n < 2 {
		t.Errorf("healthy again after %d passes, want at least 2", n)
	}
	if !strings.Contains(c.LastError(), "503") {
		t.Errorf("last error %q: it should still tell why the instance was unhealthy", c.LastError())
	}
}

func TestTimeoutCountsAsFailure(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answer only after the probe gave up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	cfg := fast("/slow")
	cfg.Timeout, cfg.UnhealthyThreshold = 20*time.Millisecond, 2
	c := start(t, srv.Listener.Addr().String(), cfg)
	err := wait(t, c)
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "GET /slow: no answer within 20ms") {
		t.Fatalf("WaitHealthy: %v; want unhealthy for want of an answer", err)
	}
}

func TestTCPCheckWithoutPath(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The kernel accepts connections into the backlog: no Accept is needed.
	c := start(t, l.Addr().String(), fast(""))
	if err := wait(t, c); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	next(t, c) // healthy
	l.Close()
	if got := next(t, c); got != Unhealthy {
		t.Fatalf("change %s after the listener closed, want unhealthy", got)
	}
	if !strings.Contains(c.LastError(), "connection refused") {
		t.Errorf("last error %q, want connection refused", c.LastError())
	}
}

func TestWaitHealthyReportsTheProbeError(t *testing.T) {
	s := newServer(t, http.StatusInternalServerError)
	err := wait(t, start(t, s.addr, fast("/healthz")))
	if !errors.Is(err, ErrUnhealthy) || err.Error() != "unhealthy: GET /healthz: 500 Internal Server Error" {
		t.Errorf("WaitHealthy: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // nothing listens there now
	err = wait(t, start(t, l.Addr().String(), fast("/healthz")))
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("WaitHealthy with nothing listening: %v", err)
	}
}

// Within StartPeriod failures do not count: WaitHealthy goes on until its context ends,
// and says what the probes saw.
func TestWaitHealthyEndsWithItsContext(t *testing.T) {
	s := newServer(t, http.StatusServiceUnavailable)
	cfg := fast("/healthz")
	cfg.StartPeriod = time.Hour
	c := start(t, s.addr, cfg)
	for s.hits[503].Load() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	err := WaitHealthy(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("WaitHealthy: %v; want the deadline and the probe's error", err)
	}
	if c.State() != Unknown {
		t.Errorf("state %s within the start period, want unknown", c.State())
	}
}

// Redirects are not followed: the 3xx itself passes.
func TestRedirectPasses(t *testing.T) {
	s := newServer(t, http.StatusFound)
	if err := wait(t, start(t, s.addr, fast("/"))); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	if n := s.hits[200].Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestStopEndsProbing(t *testing.T) {
	s := newServer(t, http.StatusServiceUnavailable)
	cfg := fast("/healthz")
	cfg.UnhealthyThreshold = 1000
	c := start(t, s.addr, cfg)
	for s.hits[503].Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	c.Stop()
	c.Stop() // idempotent
	select {
	case <-c.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	n := s.hits[503].Load()
	time.Sleep(5 * cfg.Interval)
	if m := s.hits[503].Load(); m != n {
		t.Errorf("%d probes after Stop", m-n)
	}
	if err := wait(t, c); !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "503") {
		t.Errorf("WaitHealthy on a stopped checker: %v", err)
	}
}

func TestStartContextEndStopsTheChecker(t *testing.T) {
	s := newServer(t, http.StatusOK)
	ctx, cancel := context.WithCancel(context.Background())
	c := Start(ctx, s.addr, fast("/"))
	cancel()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the checker outlived its context")
	}
}

// A reader that never reads does not hold the prober back, and once it reads, the
// newest change is there.
func TestSlowReaderNeverBlocksTheProber(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := fast("/")
	cfg.Interval, cfg.UnhealthyThreshold = time.Millisecond, 1 // a change at every probe
	c := start(t, srv.Listener.Addr().String(), cfg)
	for n.Load() < 3*changesBuffer {
		time.Sleep(5 * time.Millisecond)
	}
	c.Stop()
	var last State
	for range changesBuffer {
		last = next(t, c)
	}
	select {
	case s := <-c.Changes():
		t.Fatalf("more than %d changes buffered: %s", changesBuffer, s)
	default:
	}
	if last != c.State() {
		t.Errorf("the last change delivered is %s; the state is %s", last, c.State())
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{Interval: time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Unknown: "unknown", Healthy: "healthy", Unhealthy: "unhealthy", 7: "State(7)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s.String(), want)
		}
	}
}
