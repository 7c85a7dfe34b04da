package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dockerengine "github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/runtime/process"
)

// testServer is a `drover server` process started by a test.
type testServer struct {
	t       *testing.T
	cmd     *exec.Cmd
	URL     string
	Proxy   string // the deploy proxy's http://HOST:PORT
	Data    string
	Token   string
	log     *syncBuffer
	db      string
	uid     int      // runs the server as this user (with its group); 0: as the test
	groups  []string // with uid: more groups it is in, by gid
	started bool     // started once: the instances' cleanup is registered
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listening = regexp.MustCompile(`msg="drover server listening" url=(http://\S+) proxy=(http://\S+)`)

// startServer runs drover server on a free loopback port with data in dir; db is the
// --db flag ("" for SQLite).
func startServer(t *testing.T, dir, db string, extra ...string) *testServer {
	t.Helper()
	s := &testServer{t: t, Data: dir, log: &syncBuffer{}, db: db}
	s.start(extra...)
	return s
}

// stopInstances stops the service instances servers on data left serving, as the next
// server would adopt them.
func stopInstances(t *testing.T, data string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt := &process.Runtime{State: filepath.Join(data, "deploy", "running")}
	found, err := rt.Adopt(ctx)
	if err != nil {
		t.Errorf("find the instances left serving: %v", err)
	}
	var wg sync.WaitGroup
	for _, a := range found {
		wg.Go(func() { a.Instance.Stop(ctx) })
	}
	wg.Wait()
	// And its containers, where a Docker Engine answers.
	if e, err := dockerengine.Connect(ctx, dockerengine.Owner(data), dockerengine.Registry{}); err == nil {
		defer e.Close()
		if _, err := e.RemoveLeftovers(ctx, nil); err != nil {
			t.Errorf("remove the containers left serving: %v", err)
		}
	}
}

func (s *testServer) start(extra ...string) {
	t := s.t
	t.Helper()
	if !s.started {
		s.started = true
		// Deployed instances outlive the server: they go once it has stopped (this
		// cleanup runs after the server's, registered below, and before the data
		// folder's, registered before the server started).
		t.Cleanup(func() { stopInstances(t, s.Data) })
	}
	args := append([]string{"server", "--data", s.Data, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--grace", "500ms"}, extra...)
	// Servers run side by side here: as root, each would give its steps the default uids
	// and stop every process of them when a run ends. Tests of isolation give ranges.
	for _, flag := range []string{"--step-uids", "--service-uids"} {
		if !slices.Contains(extra, flag) {
			args = append(args, flag, "off")
		}
	}
	if s.db != "" {
		args = append(args, "--db", s.db)
	}
	cmd := exec.Command(droverBin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if s.uid != 0 {
		groups := []uint32{}
		for _, g := range s.groups {
			n, _ := strconv.Atoi(g)
			groups = append(groups, uint32(n))
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), Groups: groups}}
		cmd.Env = append(cmd.Env, "HOME="+s.Data, "GIT_CONFIG_NOSYSTEM=1")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.log.WriteString(line + "\n")
			if m := listening.FindStringSubmatch(line); m != nil && !sent {
				found <- m[1:]
				sent = true
			}
		}
	}()
	select {
	case urls := <-found:
		s.URL, s.Proxy = urls[0], urls[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not start:\n%s", s.log)
	}
	token, err := os.ReadFile(filepath.Join(s.Data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	s.Token = strings.TrimSpace(string(token))
	t.Cleanup(func() { s.stop(syscall.SIGTERM) })
}

// stop ends the server with sig and waits for it.
func (s *testServer) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// api calls the JSON API with the admin token (or token, when given) and decodes into out.
func (s *testServer) api(method, path, token string, in, out any) int {
	s.t.Helper()
	if token == "" {
		token = s.Token
	}
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, s.URL+path, body)
	if token != "-" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// as runs the drover CLI against the server with token.
func (s *testServer) as(token string, args ...string) result {
	s.t.Helper()
	return drover(s.t, "", append(args, "--server", s.URL, "--token", token)...)
}

// mint runs drover token create with args as the admin and returns the new token.
func (s *testServer) mint(args ...string) string {
	s.t.Helper()
	res := s.as(s.Token, append([]string{"token", "create"}, args...)...)
	if res.code != 0 {
		s.t.Fatalf("token create: %s", res)
	}
	return strings.TrimSpace(res.stdout)
}

// text fetches a plain-text API answer.
func (s *testServer) text(path string) string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

type apiRun struct {
	Number  int    `json:"number"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Commit  string `json:"commit"`
	Branch  string `json:"branch"`
	Trigger string `json:"trigger"`
	Steps   []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"steps"`
}

// waitRun polls run n of project p until ok(run) or the deadline.
func (s *testServer) waitRun(p string, n int, ok func(apiRun) bool) apiRun {
	s.t.Helper()
	var run apiRun
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if code := s.api("GET", fmt.Sprintf("/api/v1/projects/%s/runs/%d", p, n), "", nil, &run); code == 200 && ok(run) {
			return run
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("run %s #%d never got there; last: %+v\nserver log:\n%s", p, n, run, s.log)
	return run
}

func finished(r apiRun) bool {
	return r.Status != "pending" && r.Status != "running"
}

// gitRepo makes a repository with drover.yml and commits it; it returns the folder.
func gitRepo(t *testing.T, yml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "drover.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "add pipeline")
	return dir
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.invalid"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// pushURL is the authenticated URL of hosted project name.
func (s *testServer) pushURL(name string) string {
	return strings.Replace(s.URL, "http://", "http://admin:"+s.Token+"@", 1) + "/git/" + name + ".git"
}

// gitErr runs git and returns its output and error, for pushes expected to fail.
func gitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
