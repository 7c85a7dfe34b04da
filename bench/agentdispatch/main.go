// Command agentdispatch measures how fast a Drover server hands queued steps to free
// slots, for bench/agents.sh: with agents (AGENTS `drover agent run` processes of
// capacity 1, the server running no step itself) or with the server running the steps
// itself (its default workers). It queues RUNS one-step runs, lets them run, and reports
// the dispatch latency, from a slot falling free to the next step's process starting,
// p50 and p99, with the server's CPU time. It is a benchmark tool, not part of drover.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	drover := flag.String("drover", "drover", "the drover binary")
	work := flag.String("work", "", "a scratch folder")
	mode := flag.String("mode", "agents", "agents: steps run on agents; server: the server runs them")
	agents := flag.Int("agents", 100, "agent processes (capacity 1 each), with -mode agents")
	runs := flag.Int("runs", 1000, "one-step runs queued")
	nice := flag.Int("nice", 0, "niceness of the agents")
	split := flag.Bool("split", false, "the server on the first CPU, the agents on the others: as on machines of their own")
	flag.Parse()
	b := &bench{drover: *drover, work: *work, runs: *runs, nice: *nice, split: *split}
	if err := b.run(*mode, *agents); err != nil {
		fmt.Fprintln(os.Stderr, "agentdispatch:", err)
		b.stop()
		os.Exit(1)
	}
	b.stop()
}

type bench struct {
	drover, work string
	runs, nice   int
	split        bool
	server       *exec.Cmd
	agents       []*exec.Cmd
	url, token   string
}

func (b *bench) stop() {
	for _, a := range b.agents {
		_ = a.Process.Kill()
		_ = a.Wait()
	}
	if b.server != nil {
		_ = b.server.Process.Kill()
		_ = b.server.Wait()
	}
}

var listening = regexp.MustCompile(`msg="drover server listening" url=(http://\S+)`)

func (b *bench) run(mode string, agents int) error {
	args := []string{"server", "--data", filepath.Join(b.work, "data"), "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
		"--step-uids", "off", "--service-uids", "off"}
	if mode == "agents" {
		args = append(args, "--no-local-steps")
	}
	serverLog := filepath.Join(b.work, "server.log")
	if err := b.startServer(args, serverLog); err != nil {
		return err
	}
	began := time.Now()
	cpu0 := cpuTime(b.server.Process.Pid)
	if err := b.queue(); err != nil {
		return err
	}
	queued := time.Since(began)
	if mode == "agents" {
		began, cpu0 = time.Now(), cpuTime(b.server.Process.Pid) // dispatch starts with the agents
		if err := b.startAgents(agents); err != nil {
			return err
		}
	}
	if err := b.wait(); err != nil {
		return err
	}
	took, cpu := time.Since(began), cpuTime(b.server.Process.Pid)-cpu0
	_, serverKids := cpuTimes(b.server.Process.Pid)
	var agentsOwn, agentsKids time.Duration
	for _, a := range b.agents {
		own, kids := cpuTimes(a.Process.Pid)
		agentsOwn, agentsKids = agentsOwn+own, agentsKids+kids
	}
	var lat []time.Duration
	var err error
	if mode == "agents" {
		lat, err = agentLatencies(filepath.Join(b.work, "agents"))
	} else {
		lat, err = serverLatencies(serverLog)
	}
	if err != nil {
		return err
	}
	slices.Sort(lat)
	var handoff []time.Duration
	if mode == "agents" {
		if handoff, err = serverHandoffs(serverLog); err != nil {
			return err
		}
		slices.Sort(handoff)
	}
	fmt.Printf("mode=%s split=%v agents_nice=%d runs=%d queued_in=%s ran_in=%s runs_per_s=%.0f handoffs=%d dispatch_p50_ms=%.1f dispatch_p99_ms=%.1f server_handoff_p50_ms=%.1f server_handoff_p99_ms=%.1f server_cpu_s=%.2f server_cpu_pct=%.0f server_children_cpu_s=%.2f agents_cpu_s=%.2f agents_children_cpu_s=%.2f\n",
		mode, b.split, b.nice, b.runs, queued.Round(time.Millisecond), took.Round(time.Millisecond), float64(b.runs)/took.Seconds(), len(lat),
		ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(handoff, 50)), ms(pct(handoff, 99)), cpu.Seconds(), 100*cpu.Seconds()/took.Seconds(), serverKids.Seconds(),
		agentsOwn.Seconds(), agentsKids.Seconds())
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

func (b *bench) startServer(args []string, logFile string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	b.server = exec.Command(b.drover, args...)
	if b.split {
		b.server = exec.Command("taskset", append([]string{"-c", "0", b.drover}, args...)...)
	}
	b.server.Stderr = f
	b.server.Env = append(os.Environ(), "DROVER_LOG_LEVEL=debug")
	if err := b.server.Start(); err != nil {
		return err
	}
	for range 400 {
		data, _ := os.ReadFile(logFile)
		if m := listening.FindSubmatch(data); m != nil {
			b.url = string(m[1])
			tok, err := os.ReadFile(filepath.Join(b.work, "data", "admin-token"))
			b.token = strings.TrimSpace(string(tok))
			return err
		}
		time.Sleep(25 * time.Millisecond)
	}
	return errors.New("the server did not start; see " + logFile)
}

// queue pushes a one-step pipeline to project bench (run 1) and starts the other runs
// through the API.
func (b *bench) queue() error {
	repo := filepath.Join(b.work, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(repo, "drover.yml"), []byte("steps:\n  - {name: step, run: 'true'}\n"), 0o644); err != nil {
		return err
	}
	push := strings.Replace(b.url, "http://", "http://b:"+b.token+"@", 1) + "/git/bench.git"
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "bench"},
		{"push", "-q", push, "main"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v: %s", args, err, out)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, b.runs)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for range next {
				if err := b.post("/api/v1/projects/bench/runs", `{"branch":"main"}`); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := 2; i <= b.runs; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

func (b *bench) post(path, body string) error {
	req, _ := http.NewRequest("POST", b.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, data)
	}
	return nil
}

func (b *bench) startAgents(n int) error {
	out, err := exec.Command(b.drover, "token", "create", "--machine", "agent", "--server", b.url, "--token", b.token).Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	token := strings.TrimSpace(string(out))
	dir := filepath.Join(b.work, "agents")
	for i := range n {
		name := fmt.Sprintf("a%03d", i)
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if f, err = os.Create(filepath.Join(dir, name+".log")); err != nil {
				return err
			}
		}
		argv := []string{"nice", "-n", strconv.Itoa(b.nice), b.drover, "agent", "run", "--server", b.url, "--token", token, "--name", name,
			"--workdir", filepath.Join(dir, name)}
		if b.split {
			argv = append([]string{"taskset", "-c", fmt.Sprintf("1-%d", runtime.NumCPU()-1)}, argv...)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = f
		cmd.Env = append(os.Environ(), "DROVER_LOG_LEVEL=debug")
		if err := cmd.Start(); err != nil {
			return err
		}
		b.agents = append(b.agents, cmd)
	}
	return nil
}

// wait waits until every run has finished; an unsuccessful one is an error.
func (b *bench) wait() error {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", b.url+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		counts := map[string]int{}
		for line := range bytes.Lines(data) {
			var status string
			var n int
			if _, err := fmt.Sscanf(string(line), "drover_runs{status=%q} %d", &status, &n); err == nil {
				counts[status] = n
			}
		}
		if counts["success"] == b.runs {
			return nil
		}
		if bad := counts["failure"] + counts["error"] + counts["cancelled"]; bad > 0 {
			return fmt.Errorf("%d runs did not pass: %v", bad, counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("the runs did not finish within 30 minutes")
}

// cpuTime is the user and system CPU time process pid used so far.
func cpuTime(pid int) time.Duration {
	own, _ := cpuTimes(pid)
	return own
}

// cpuTimes are the user and system CPU time process pid used so far, and that of its
// children that ended (git, the steps' shells).
func cpuTimes(pid int) (own, children time.Duration) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	n := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * time.Second / 100 // USER_HZ
	}
	return n(11) + n(12), n(13) + n(14)
}

var logTime = regexp.MustCompile(`^time=(\S+) `)

// events reads the times of log lines of file containing each of marks, by mark.
func events(file string, marks ...string) (map[string][]time.Time, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range marks {
			if !strings.Contains(line, m) {
				continue
			}
			if t := logTime.FindStringSubmatch(line); t != nil {
				if at, err := time.Parse(time.RFC3339Nano, t[1]); err == nil {
					out[m] = append(out[m], at)
				}
			}
		}
	}
	return out, sc.Err()
}

// pair matches each slot falling free with the step start that used it, frees and
// starts being one slot's (or one worker pool's) events in time order: a start takes the
// earliest free not yet taken that came before it; a start with none (the slot's
// first) takes nothing, unless a free follows within 50 ms: then the step was handed
// over before the free was logged, and counts as 0.
func pair(frees, starts []time.Time) []time.Duration {
	var lat []time.Duration
	i := 0
	for _, s := range starts {
		switch {
		case i < len(frees) && !frees[i].After(s):
			lat = append(lat, s.Sub(frees[i]))
			i++
		case i < len(frees) && frees[i].Sub(s) < 50*time.Millisecond && len(lat) > 0:
			lat = append(lat, 0)
			i++
		}
	}
	return lat
}

// agentLatencies are the handoffs of every agent: from its slot falling free to its
// next step's process starting.
func agentLatencies(dir string) ([]time.Duration, error) {
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for _, file := range logs {
		ev, err := events(file, `msg="slot free"`, `msg="step process starting"`)
		if err != nil {
			return nil, err
		}
		lat = append(lat, pair(ev[`msg="slot free"`], ev[`msg="step process starting"`])...)
	}
	return lat, nil
}

var slotFree = regexp.MustCompile(`msg="step leased" .* slot_free_us=([0-9]+)`)

// serverHandoffs are the server's own part of each handoff to an agent: from taking a
// result, which frees a slot of the agent, to handing it its next step.
func serverHandoffs(file string) ([]time.Duration, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []time.Duration
	for _, m := range slotFree.FindAllSubmatch(data, -1) {
		if us, _ := strconv.Atoi(string(m[1])); us > 0 {
			out = append(out, time.Duration(us)*time.Microsecond)
		}
	}
	return out, nil
}

// serverLatencies are the handoffs of the server's workers: from a run finishing to the
// next run's step starting.
func serverLatencies(file string) ([]time.Duration, error) {
	ev, err := events(file, `msg="run finished"`, `msg="step started"`)
	if err != nil {
		return nil, err
	}
	starts := ev[`msg="step started"`]
	frees := ev[`msg="run finished"`]
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	return pair(frees, starts), nil
}
