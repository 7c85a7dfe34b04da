package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/agentproto"
	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/mask"
	"github.com/drover-cd/drover/report"
)

// lease is one attempt the agent runs or still has to report.
type lease struct {
	a   *agent
	p   agentproto.Lease
	log *slog.Logger
	// ctx is the attempt's work: preparing, the step, packing and pushing. Stop and a
	// refusal cancel it; the log and the result go on with the agent's.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	masker  *mask.Masker
	out     *logBuf
	shipped chan struct{} // closed once ship returned
	refused atomic.Bool   // the server gave the attempt up: report nothing more
}

func newLease(ctx context.Context, a *agent, p agentproto.Lease) *lease {
	lctx, cancel := context.WithCancelCause(ctx)
	log := a.log.With("lease", p.ID, "step", p.Name)
	return &lease{a: a, p: p, log: log, ctx: lctx, cancel: cancel, masker: mask.New(p.Hidden),
		out: newLogBuf(a.cfg.LogBuffer, p.Name, log), shipped: make(chan struct{})}
}

// refuse records that the server gave the attempt up and stops the step.
func (l *lease) refuse(err error) {
	if l.refused.CompareAndSwap(false, true) {
		l.log.Warn("the server gave the attempt up: stopping it and reporting nothing more", "err", err)
		l.cancel(fmt.Errorf("the server gave the attempt up: %w", err))
		l.out.close() // what the step still writes goes nowhere
	}
}

// run runs the attempt and reports it; ctx is the agent's.
func (l *lease) run(ctx context.Context) {
	l.log.Info("step leased", "workspace", l.p.Workspace, "attempt", l.p.Attempt)
	go l.ship(ctx)
	started := time.Now()
	done := l.execute()
	l.out.close()
	<-l.shipped
	if l.refused.Load() || ctx.Err() != nil {
		return
	}
	done.LogSize = l.out.accepted()
	l.maskDone(&done)
	l.log.Info("step ended", "exit_code", done.ExitCode, "err", done.Error, "took", time.Since(started).Round(time.Millisecond),
		"log_bytes", done.LogSize)
	l.report(ctx, done)
}

// registryHost is the host:port of the server's registry, which the server serves at
// its own address: what a Docker Engine names its images by.
func registryHost(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return ""
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		return net.JoinHostPort(u.Hostname(), port)
	}
	return u.Host
}

// execute takes a slot, prepares the workspace and runs the step there, then reads its
// reports and packs and pushes its artifacts.
func (l *lease) execute() agentproto.Done {
	fail := func(msg string) agentproto.Done { return agentproto.Done{ExitCode: -1, Error: msg} }
	select {
	case l.a.slots <- struct{}{}:
		defer func() { <-l.a.slots }()
	case <-l.ctx.Done():
		return fail(context.Cause(l.ctx).Error())
	}
	s := l.p.Step
	if s == nil {
		return fail("the lease has no step")
	}
	backend := l.a.cfg.Backend
	if l.p.ImageRef != "" || l.p.Self != "" {
		// The step pushes or pulls the run's images in the server's registry, signed
		// in with the lease's credential.
		if l.a.cfg.ForRegistry == nil {
			return fail(fmt.Sprintf("agent %s cannot reach the server's registry for this step's images", l.a.cfg.Name))
		}
		b, done, err := l.a.cfg.ForRegistry(registryHost(l.a.cfg.Server), l.p.Token)
		if err != nil {
			return fail(fmt.Sprintf("agent %s: the server's registry: %v", l.a.cfg.Name, err))
		}
		defer done()
		backend = b
	}
	if sup, ok := backend.(engine.Supporter); ok {
		if err := sup.Supports(s); err != nil {
			return fail(fmt.Sprintf("agent %s cannot run this step: %v", l.a.cfg.Name, err))
		}
	}
	ws, dir, err := l.a.acquire(l.p.Workspace, l.p.Run)
	if err != nil {
		return fail("prepare the workspace: " + err.Error())
	}
	defer l.a.release(l.p.Workspace)
	if err := l.prepare(ws, dir); err != nil {
		if cause := context.Cause(l.ctx); l.ctx.Err() != nil {
			err = cause
		}
		return fail("prepare the workspace: " + err.Error())
	}

	var out io.Writer = l.out
	flush := func() {}
	if !l.masker.Empty() {
		mw := l.masker.Writer(l.out)
		lw := &lockedWriter{w: mw}
		out, flush = lw, func() { lw.mu.Lock(); _ = mw.Flush(); lw.mu.Unlock() }
	}
	var built string
	spec := &engine.Spec{Name: l.p.Name, Step: s, Script: l.p.Script, Dir: dir, Env: l.env(dir),
		Attempt: l.p.Attempt, Run: l.p.Run, ImageRef: l.p.ImageRef, Self: l.p.Self, Annotations: l.p.Annotations,
		Built: func(image string) { built = image }}
	l.log.Debug("step process starting") // bench/agents.sh times dispatch to here
	code, err := backend.Exec(l.ctx, spec, out)
	flush()
	done := agentproto.Done{ExitCode: code, Built: built}
	if err != nil {
		done.Error = err.Error()
	}
	if len(s.Reports.JUnit) > 0 || s.Reports.Coverage != "" || s.Gates.Coverage != nil || s.Gates.Failures != nil {
		sum, warnings, err := report.Collect(dir, s.Reports.JUnit, s.Reports.Coverage)
		done.Reports, done.ReportWarnings = &sum, warnings
		if err != nil {
			done.ReportError = err.Error()
		}
	}
	if code == 0 && err == nil && len(s.Artifacts) > 0 {
		l.artifacts(ws, dir, &done)
	}
	return done
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}

// baseEnv are the variables a step inherits from the agent's environment: enough to find
// programs and a home, not the agent's secrets (the list of runner's minimalEnv).
var baseEnv = []string{"PATH", "HOME", "LANG", "TMPDIR", "GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOFLAGS", "SSL_CERT_FILE"}

// env is the step's environment: the agent's few variables, the lease's over them and
// DROVER_WORKSPACE over both.
func (l *lease) env(dir string) []string {
	var env []string
	for _, k := range baseEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return override(override(env, l.p.Env), []string{"DROVER_WORKSPACE=" + dir})
}

// override is env with over's KEY=VALUE entries in place of env's own of the same keys.
func override(env, over []string) []string {
	keys := map[string]bool{}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return keys[k]
	})
	return append(out, over...)
}

// artifacts packs the step's declared paths and pushes them to the lease's repository.
func (l *lease) artifacts(ws *workspace, dir string, done *agentproto.Done) {
	store, err := l.a.artifacts()
	if err != nil {
		done.ArtifactError = err.Error()
		return
	}
	l.a.beginPacking()
	defer l.a.endPacking()
	var descs []ocispec.Descriptor
	for _, p := range l.p.Step.Artifacts {
		desc, err := store.Pack(l.ctx, dir, p)
		if err != nil {
			done.ArtifactError = err.Error()
			done.ArtifactMissing = errors.Is(err, fs.ErrNotExist)
			return
		}
		descs = append(descs, desc)
	}
	for _, desc := range descs {
		if err := l.push(store.Blob, desc); err != nil {
			done.ArtifactError = fmt.Sprintf("push %s: %v", desc.Annotations[ocispec.AnnotationTitle], err)
			return
		}
		ws.had(desc.Digest)
		l.log.Info("artifact pushed", "path", desc.Annotations[ocispec.AnnotationTitle], "digest", desc.Digest, "size", desc.Size)
	}
	done.Artifacts = descs
}

// pushTries bounds how often a blob's push is tried when the server fails it.
const pushTries = 6

// push uploads one blob to the lease's repository unless it is there already: a POST
// opens an upload, a PUT to its Location with the digest closes it with the body.
func (l *lease) push(open func(digest.Digest) (io.ReadCloser, error), desc ocispec.Descriptor) error {
	bo := backoff{min: 500 * time.Millisecond, max: 5 * time.Second}
	var err error
	for range pushTries {
		var status int
		if status, err = l.pushOnce(open, desc); err == nil {
			return nil
		}
		if (status != 0 && !transient(status)) || l.ctx.Err() != nil {
			break
		}
		l.log.Warn("push an artifact; will retry", "digest", desc.Digest, "err", err)
		if !bo.wait(l.ctx) {
			break
		}
	}
	if l.ctx.Err() != nil {
		return context.Cause(l.ctx)
	}
	return err
}

// pushOnce tries a push once; status is that of a refusal.
func (l *lease) pushOnce(open func(digest.Digest) (io.ReadCloser, error), desc ocispec.Descriptor) (int, error) {
	repo := "/v2/" + l.p.Repository
	resp, err := l.a.do(l.ctx, http.MethodHead, l.a.url(repo+"/blobs/"+desc.Digest.String()), l.p.Token, nil, nil)
	if err != nil {
		return 0, err
	}
	drain(resp)
	if resp.StatusCode == http.StatusOK {
		return 0, nil
	}
	start := l.a.url(repo + "/blobs/uploads/")
	resp, err = l.a.do(l.ctx, http.MethodPost, start, l.p.Token, nil, nil)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusAccepted {
		defer drain(resp)
		return resp.StatusCode, fmt.Errorf("start the upload: %w", answerError(resp))
	}
	drain(resp)
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return 0, fmt.Errorf("start the upload: the server gave no usable Location (%q)", resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	blob, err := open(desc.Digest)
	if err != nil {
		return 0, err
	}
	defer blob.Close()
	req, err := http.NewRequestWithContext(l.ctx, http.MethodPut, loc.String(), blob)
	if err != nil {
		return 0, err
	}
	req.ContentLength = desc.Size
	req.Header.Set("Authorization", "Bearer "+l.p.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = l.a.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reach the server: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("upload: %w", answerError(resp))
	}
	return 0, nil
}

// maskDone hides the lease's secrets in what Done says in words.
func (l *lease) maskDone(d *agentproto.Done) {
	m := l.masker
	if m.Empty() {
		return
	}
	d.Error, d.ReportError, d.ArtifactError = m.String(d.Error), m.String(d.ReportError), m.String(d.ArtifactError)
	for i := range d.ReportWarnings {
		d.ReportWarnings[i] = m.String(d.ReportWarnings[i])
	}
	if d.Reports != nil && d.Reports.Tests != nil {
		for i := range d.Reports.Tests.Failures {
			f := &d.Reports.Tests.Failures[i]
			f.Suite, f.Class, f.Name = m.String(f.Suite), m.String(f.Class), m.String(f.Name)
			f.Message, f.Detail = m.String(f.Message), m.String(f.Detail)
		}
	}
}

// report sends the result until the server takes or refuses it, or ctx ends: the server
// may be restarting, and a result must not be lost.
func (l *lease) report(ctx context.Context, done agentproto.Done) {
	body, err := json.Marshal(done)
	if err != nil {
		l.log.Error("encode the result", "err", err)
		return
	}
	url := l.a.url(agentproto.LeasePath + strconv.FormatInt(l.p.ID, 10) + "/done")
	bo := backoff{min: pollBackoffMin, max: pollBackoffMax}
	for ctx.Err() == nil {
		status, err := l.post(ctx, url, body, map[string]string{"Content-Type": "application/json"})
		switch {
		case err == nil:
			return
		case refusal(status):
			l.log.Warn("the server refused the step's result: it gave the attempt up", "err", err)
			return
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("send the step's result; will retry", "err", err, "retry_in", bo.d())
		bo.wait(ctx)
	}
}

// post sends one report on the lease (a log chunk, its result); status is the HTTP
// status of a refusal.
func (l *lease) post(ctx context.Context, url string, body []byte, header map[string]string) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := l.a.do(rctx, http.MethodPost, url, l.p.Token, bytes.NewReader(body), header)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, answerError(resp)
	}
	return resp.StatusCode, nil
}
