package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-cd/drover/proxy"
)

// fakeServer answers follow requests as the Drover server does: at once when the
// proxy's version is not the table's, else when the table changes or after a while.
type fakeServer struct {
	mu      sync.Mutex
	table   Table
	changed chan struct{}
	acks    []string // "NAME VERSION" of every follow request
	token   string
}

func newFakeServer(tbl Table) *fakeServer {
	return &fakeServer{table: tbl, changed: make(chan struct{}), token: "proxy-token"}
}

func (f *fakeServer) set(tbl Table) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table = tbl
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeServer) acked(name, version string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.acks {
		if a == name+" "+version {
			return true
		}
	}
	return false
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/routes" || r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, `{"error": "no"}`, http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	f.acks = append(f.acks, q.Get("proxy")+" "+q.Get("wait"))
	tbl, changed := f.table, f.changed
	f.mu.Unlock()
	if tbl.Version == q.Get("wait") {
		select {
		case <-changed:
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		tbl = f.table
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tbl)
}

// backend is an instance answering its own name.
func backend(t *testing.T, name string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func route(host string, addrs ...string) Route {
	r := Route{Host: host, Instances: []Instance{}}
	for i, a := range addrs {
		r.Instances = append(r.Instances, Instance{ID: fmt.Sprintf("%s-%d", host, i), Addr: a})
	}
	return r
}

// get sends a request for host through p and returns the status and body.
func get(p *proxy.Proxy, host string) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://"+host+"/", nil)
	p.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

// run starts f.Run and stops it when the test ends; the returned channel has Run's error.
func run(t *testing.T, f *Follower) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return done
}

func TestFollowerAppliesAndKeepsEachTable(t *testing.T) {
	a1, b1 := backend(t, "a1"), backend(t, "b1")
	fake := newFakeServer(Table{Version: "5.1", Routes: []Route{route("a.staging.localhost", a1)}})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	state := t.TempDir()
	p := proxy.New(nil)
	f := &Follower{Server: ts.URL, Token: fake.token, Name: "edge-1", State: state, Proxy: p}
	run(t, f)
	// A second proxy following the same server routes the same way.
	p2 := proxy.New(nil)
	run(t, &Follower{Server: ts.URL, Token: fake.token, Name: "edge-2", Proxy: p2})

	eventually(t, "a served", func() bool { c, b := get(p, "a.staging.localhost"); return c == 200 && b == "a1" })
	// Its next follow request says it serves 5.1: the acknowledgement.
	eventually(t, "5.1 acknowledged", func() bool { return fake.acked("edge-1", "5.1") })

	// A new table: b appears, a goes.
	fake.set(Table{Version: "5.2", Routes: []Route{route("b.staging.localhost", b1)}})
	eventually(t, "b served", func() bool { c, b := get(p, "b.staging.localhost"); return c == 200 && b == "b1" })
	eventually(t, "a gone", func() bool { c, _ := get(p, "a.staging.localhost"); return c == http.StatusBadGateway })
	eventually(t, "5.2 acknowledged", func() bool { return fake.acked("edge-1", "5.2") && fake.acked("edge-2", "5.2") })
	for _, host := range []string{"a.staging.localhost", "b.staging.localhost"} {
		if a, b := fmt.Sprint(p.Backends(host)), fmt.Sprint(p2.Backends(host)); a != b {
			t.Errorf("%s: edge-1 routes to %s, edge-2 to %s", host, a, b)
		}
	}

	data, err := os.ReadFile(filepath.Join(state, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var kept Table
	if err := json.Unmarshal(data, &kept); err != nil || kept.Version != "5.2" || len(kept.Routes) != 1 || kept.Routes[0].Host != "b.staging.localhost" {
		t.Errorf("kept table: %v\n%s", err, data)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Errorf("the state folder holds more than the table: %v", entries)
	}
}

// logCounter counts log records by message.
type logCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for m, c := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n += c
		}
	}
	return n
}

// A proxy started while the server is down serves the table it kept at once, goes on
// serving it, says once that the server is away and once that it is back.
func TestFollowerServesFromDiskWhileTheServerIsDown(t *testing.T) {
	a1 := backend(t, "a1")
	state := t.TempDir()
	fake := newFakeServer(Table{Version: "5.1", Routes: []Route{route("a.staging.localhost", a1, deadAddr(t))}})
	ts := httptest.NewUnstartedServer(fake)
	serverAddr := ts.Listener.Addr().String()

	// A first proxy kept the table while the server was up.
	ts.Start()
	first := proxy.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	f1 := &Follower{Server: ts.URL, Token: fake.token, Name: "edge-1", State: state, Proxy: first}
	done := make(chan error, 1)
	go func() { done <- f1.Run(ctx) }()
	eventually(t, "table kept", func() bool { _, err := os.Stat(filepath.Join(state, StateFile)); return err == nil })
	cancel()
	<-done
	ts.Close()

	// The server is down; a new proxy starts from the kept table.
	p := proxy.New(nil)
	logs := &logCounter{msgs: map[string]int{}}
	f := &Follower{Server: "http://" + serverAddr, Token: fake.token, Name: "edge-1", State: state, Proxy: p,
		Log: slog.New(logs), MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	tbl, err := f.Load()
	if err != nil || tbl.Version != "5.1" {
		t.Fatalf("Load: %v %+v", err, tbl)
	}
	run(t, f)
	// One of the two instances refuses connections: no request fails.
	for i := range 50 {
		if code, body := get(p, "a.staging.localhost"); code != 200 || body != "a1" {
			t.Fatalf("request %d with the server down: %d %q", i, code, body)
		}
	}
	time.Sleep(200 * time.Millisecond) // many attempts to reach the server
	if n := logs.count("server unreachable"); n != 1 {
		t.Errorf("%d logs of the server being away, want 1: %v", n, logs.msgs)
	}

	// The server comes back (on the same address) with a new run's table.
	ln, err := net.Listen("tcp", serverAddr)
	if err != nil {
		t.Skipf("the server's address was taken meanwhile: %v", err)
	}
	b1 := backend(t, "b1")
	fake.set(Table{Version: "6.1", Routes: []Route{route("a.staging.localhost", b1)}})
	back := &httptest.Server{Listener: ln, Config: &http.Server{Handler: fake}}
	back.Start()
	t.Cleanup(back.Close)
	eventually(t, "the new table served", func() bool { _, b := get(p, "a.staging.localhost"); return b == "b1" })
	if n := logs.count("server is back"); n != 1 {
		t.Errorf("%d logs of the server being back, want 1: %v", n, logs.msgs)
	}
}

func TestFollowerWithARefusedTokenAndNothingToServeStops(t *testing.T) {
	fake := newFakeServer(Table{Version: "1.1", Routes: []Route{}})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	f := &Follower{Server: ts.URL, Token: "wrong", Name: "edge-1", Proxy: proxy.New(nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Run(ctx); !errors.Is(err, ErrRefused) {
		t.Errorf("Run with a wrong token: %v", err)
	}

	// With a kept table it serves on, and keeps asking.
	state := t.TempDir()
	a1 := backend(t, "a1")
	data, _ := json.Marshal(Table{Version: "1.1", Routes: []Route{route("a.staging.localhost", a1)}})
	os.WriteFile(filepath.Join(state, StateFile), data, 0o600)
	var buf bytes.Buffer
	f = &Follower{Server: ts.URL, Token: "wrong", Name: "edge-1", State: state, Proxy: proxy.New(nil),
		Log: slog.New(slog.NewTextHandler(&buf, nil)), MinBackoff: 5 * time.Millisecond}
	if _, err := f.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := f.Run(ctx); err != nil {
		t.Errorf("Run with a wrong token and a table: %v", err)
	}
	if code, body := get(f.Proxy, "a.staging.localhost"); code != 200 || body != "a1" {
		t.Errorf("served %d %q", code, body)
	}
	if !strings.Contains(buf.String(), "server refuses the token") {
		t.Errorf("log: %s", buf.String())
	}
}

func TestLoadWithoutATable(t *testing.T) {
	f := &Follower{State: t.TempDir(), Proxy: proxy.New(nil)}
	if _, err := f.Load(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of an empty folder: %v", err)
	}
	os.WriteFile(filepath.Join(f.State, StateFile), []byte("{half"), 0o600)
	if _, err := f.Load(); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a broken file: %v", err)
	}
}
