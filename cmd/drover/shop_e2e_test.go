package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-cd/drover/internal/browsertest"
)

// upProcess is a `drover up` started by a test, its output read line by line.
type upProcess struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	out   *syncBuffer
	read  chan struct{} // closed once all the output is in out
}

func startUp(t *testing.T, args ...string) *upProcess {
	t.Helper()
	cmd := exec.Command(droverBin, append([]string{"up"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &upProcess{t: t, cmd: cmd, lines: make(chan string, 1000), out: &syncBuffer{}, read: make(chan struct{})}
	go func() {
		defer close(u.read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			u.out.WriteString(sc.Text() + "\n")
			u.lines <- sc.Text()
		}
		close(u.lines)
	}()
	t.Cleanup(func() { u.stop() })
	return u
}

// until reads output until a line matches re and returns its submatches.
func (u *upProcess) until(re *regexp.Regexp, within time.Duration) []string {
	u.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case line, ok := <-u.lines:
			if !ok {
				u.t.Fatalf("drover up ended before %q:\n%s", re, u.out)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			u.t.Fatalf("no %q within %s:\n%s", re, within, u.out)
		}
	}
}

func (u *upProcess) stop() int {
	if u.cmd.ProcessState == nil {
		u.cmd.Process.Signal(syscall.SIGINT)
		// All the output first: Wait closes the pipe, and what was not read yet is lost.
		select {
		case <-u.read:
		case <-time.After(60 * time.Second):
			u.cmd.Process.Kill()
			select { // a reader stuck on a full lines channel gives up here
			case <-u.read:
			case <-time.After(10 * time.Second):
			}
		}
		u.cmd.Wait()
	}
	return u.cmd.ProcessState.ExitCode()
}

// page GETs a service's front page through the proxy at addr ("127.0.0.1:PORT").
func page(addr, service, env string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = service + "." + env + ".localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDroverUpDeliversTheExampleShop runs the README's first command on the example
// system: three services and the system project, from their folders to production.
func TestDroverUpDeliversTheExampleShop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three Go services in their pipelines")
	}
	shop, err := filepath.Abs("../../examples/shop")
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	// As root (CI), steps and instances run as users of their own, from ranges no other
	// test uses, with workspaces in /var/tmp: the test's folder is closed to them.
	t.Cleanup(func() { os.RemoveAll(filepath.Join("/var/tmp", "drover-"+shortHash(data))) })
	args := []string{shop, "--data", data, "--step-uids", "20940-20949", "--service-uids", "21300-21399",
		"--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--health-timeout", "30s"}
	up := startUp(t, args...)
	server := up.until(regexp.MustCompile(`^drover server on (http://\S+)`), 30*time.Second)[1]
	proxy := up.until(regexp.MustCompile(`^  web +http://web\.staging\.localhost:(\d+)/`), 6*time.Minute)[1]
	addr := "127.0.0.1:" + proxy
	code, body := page(addr, "web", "staging")
	if code != 200 || !strings.Contains(body, "Cast-iron teapot") || !strings.Contains(body, "<td>3</td>") || !strings.Contains(body, "<p>staging</p>") {
		t.Fatalf("staging's front end: %d\n%s\n%s", code, body, up.out)
	}
	// The catalog wants the key drover up gave it and web, one in staging, another in
	// production; without it the catalog refuses.
	if !strings.Contains(up.out.String(), "CATALOG_API_KEY random value of its own in production, staging") {
		t.Errorf("drover up does not say it set the shop's secret:\n%s", up.out)
	}
	if code, body := page(addr, "catalog", "staging"); code != 401 {
		t.Errorf("the catalog answered a caller without its key: %d %s", code, body)
	}
	if !strings.Contains(up.out.String(), "drover approve web 1") {
		t.Errorf("drover up does not say how to approve:\n%s", up.out)
	}
	token, _ := os.ReadFile(filepath.Join(data, "admin-token"))
	for _, svc := range []string{"catalog", "stock"} {
		res := drover(t, "", "approve", svc, "1", "--server", server, "--token", strings.TrimSpace(string(token)))
		if res.code != 0 {
			t.Fatalf("approve %s: %s", svc, res)
		}
	}
	// web requires both: its production deploy would be refused before they run there.
	for _, svc := range []string{"catalog", "stock"} {
		up.until(regexp.MustCompile(`^`+svc+` +#1 +production +success`), 2*time.Minute)
	}
	// The web front end's release is approved in the browser, on the pipeline page.
	ctx := browsertest.New(t)
	approve := `tr[data-project="web"] [data-waiting="1"] button[value="approve"]`
	browsertest.Do(t, ctx, "sign in and approve web #1",
		chromedp.Navigate(server+"/login?next=/pipeline"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), strings.TrimSpace(string(token))), chromedp.Click(chromedp.CSS("form.login button")),
		chromedp.WaitVisible(chromedp.CSS(approve)), chromedp.Click(chromedp.CSS(approve)))
	browsertest.Until(t, ctx, "the run page after the approval", `location.pathname === "/p/web/runs/1"`)
	up.until(regexp.MustCompile(`^web +#1 +production +success`), 2*time.Minute)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body = page(addr, "web", "production")
		if code == 200 && strings.Contains(body, "<p>production</p>") && strings.Contains(body, "Cast-iron teapot") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("production's front end: %d\n%s", code, body)
		}
	}
	// A change that breaks the stock API (tea is gone) passes its unit tests but fails
	// its API test against the ephemeral environment, and never reaches staging.
	work := t.TempDir()
	remote := strings.Replace(server, "http://", "http://me:"+strings.TrimSpace(string(token))+"@", 1) + "/git/stock.git"
	git(t, work, "clone", "-q", remote, "stock")
	repo := filepath.Join(work, "stock")
	src, _ := os.ReadFile(filepath.Join(repo, "main.go"))
	os.WriteFile(filepath.Join(repo, "main.go"), []byte(strings.Replace(string(src), `"tea": 120, `, "", 1)), 0o644)
	git(t, repo, "commit", "-q", "-am", "drop tea")
	git(t, repo, "push", "-q", "origin", "main")
	up.until(regexp.MustCompile(`^stock +#2 +api-test +failure`), 2*time.Minute)
	if code, body := page(addr, "web", "staging"); code != 200 || !strings.Contains(body, "<td>120</td>") {
		t.Errorf("staging changed after a change that failed its API test: %d\n%s", code, body)
	}

	// A change whose release fails its health check never gets traffic: its ephemeral
	// environment never comes up, and staging keeps what it runs.
	git(t, repo, "revert", "--no-edit", "HEAD")
	yml, _ := os.ReadFile(filepath.Join(repo, "drover.yml"))
	os.WriteFile(filepath.Join(repo, "drover.yml"), []byte(strings.Replace(string(yml), "path: /healthz", "path: /broken", 1)), 0o644)
	git(t, repo, "commit", "-q", "-am", "break the health check")
	git(t, repo, "push", "-q", "origin", "main")
	up.until(regexp.MustCompile(`^stock +#3 +api-test +failure: .*never became healthy`), 2*time.Minute)
	if code, body := page(addr, "web", "staging"); code != 200 || !strings.Contains(body, "<td>120</td>") {
		t.Errorf("staging changed after a change whose health check fails: %d\n%s", code, body)
	}
	// The front end's browser test ran in Chromium (which CI installs), or said why not.
	req, _ := http.NewRequest("GET", server+"/api/v1/projects/web/runs/1/steps/browser-test/log", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		log, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "in Chromium"
		if _, err := exec.LookPath("chromium"); err != nil {
			want = "browser test skipped: no chromium"
		}
		if !strings.Contains(string(log), want) {
			t.Errorf("the browser-test step's log lacks %q:\n%s", want, log)
		}
	}

	if code := up.stop(); code != 0 {
		t.Errorf("drover up after Ctrl-C: exit %d\n%s", code, up.out)
	}
	if code, _ := page(addr, "web", "production"); code != 0 {
		t.Errorf("the proxy still answers after Ctrl-C: %d", code)
	}

	// Again on the same data: nothing pushed, production comes back.
	again := startUp(t, append(args[:len(args)-4], "--proxy-listen", "127.0.0.1:"+proxy, "--health-timeout", "30s")...)
	again.until(regexp.MustCompile(`^The system is up`), 2*time.Minute)
	if strings.Count(again.out.String(), "already here") != 4 || strings.Contains(again.out.String(), "random value") {
		t.Errorf("a second drover up pushed again:\n%s", again.out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, body = page(addr, "web", "production"); code == 200 && strings.Contains(body, "Cast-iron teapot") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("production after a second drover up: %d\n%s", code, body)
		}
	}
}
