package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/runner"
)

// webSSEReader reads server-sent events.
type webSSEReader struct {
	t  *testing.T
	br *bufio.Reader
}

// next returns the next event's type and data, skipping comments.
func (r *webSSEReader) next() (event, data string) {
	r.t.Helper()
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func openWebEvents(t *testing.T, e *webEnv, path string) *webSSEReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // the client going away ends the stream; ts.Close waits for that
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
	}
	return &webSSEReader{t: t, br: bufio.NewReader(resp.Body)}
}

func TestWebRunEvents(t *testing.T) {
	e := newWebEnv(t, true)
	run := webDiamondRun(e)
	run.Status = "running"
	if err := e.st.UpdateRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	events := openWebEvents(t, e, "/p/shop/runs/1/events")
	var got runJSON
	ev, data := events.next()
	if err := json.Unmarshal([]byte(data), &got); err != nil || ev != "run" || got.Status != "running" || len(got.Steps) != 4 {
		t.Fatalf("first event %s %s: %v", ev, data, err)
	}

	run.Status, run.Finished = "success", time.Now()
	if err := e.st.UpdateRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	e.hub.Notify(runner.RunKey(run.ID))
	ev, data = events.next()
	if err := json.Unmarshal([]byte(data), &got); err != nil || ev != "run" || got.Status != "success" ||
		got.Number != 1 || got.Tests == nil || got.Tests.Failed != 2 {
		t.Fatalf("event after Notify %s %s: %v", ev, data, err)
	}
}

func TestWebProjectEvents(t *testing.T) {
	e := newWebEnv(t, true)
	e.project("shop")
	e.run("shop", "success")
	events := openWebEvents(t, e, "/p/shop/events")
	var got []runJSON
	if ev, data := events.next(); ev != "runs" || json.Unmarshal([]byte(data), &got) != nil || len(got) != 1 {
		t.Fatalf("first event %s %s", ev, data)
	}
	e.run("shop", "pending")
	e.hub.Notify(runner.ProjectKey("shop"))
	if ev, data := events.next(); ev != "runs" || json.Unmarshal([]byte(data), &got) != nil || len(got) != 2 ||
		got[0].Number != 2 || got[0].Status != "pending" {
		t.Fatalf("event after Notify %s %s", ev, data)
	}
	if resp, _ := e.get("/p/nope/events", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("events of a missing project: %d", resp.StatusCode)
	}
}

func TestWebEventsPingAndStop(t *testing.T) {
	e := newWebEnv(t, true)
	e.project("shop")
	e.run("shop", "running")
	w := newWeb(e.srv)
	w.ping = 10 * time.Millisecond
	ended := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/{p}/runs/{n}/events", func(rw http.ResponseWriter, r *http.Request) {
		defer close(ended)
		w.runEvents(rw, r)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/p/shop/runs/1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	pings := 0
	for pings < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": ping\n" {
			pings++
		}
	}
	cancel() // the client goes away: the stream ends
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream goes on after its client left")
	}
}

// A token revoked while its event stream is open ends the stream at the next ping,
// rather than streaming on (found in review).
func TestWebEventsEndWhenTheTokenIsRevoked(t *testing.T) {
	e := newWebEnv(t, false)
	e.project("shop")
	e.run("shop", "running")
	token, err := CreateToken(context.Background(), e.st, "vera", RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.st.TokenByHash(context.Background(), HashToken(token))
	if err != nil {
		t.Fatal(err)
	}
	w := newWeb(e.srv)
	w.ping = 10 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/{p}/runs/{n}/events", w.runEvents)
	ts := httptest.NewServer(e.srv.authenticate(mux))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/p/shop/runs/1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "event: ") {
		t.Fatalf("the stream's first line: %q, %v", line, err)
	}
	if err := e.st.RevokeToken(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := br.ReadString('\n'); err != nil {
			break // the stream ended: by the server, or by our deadline
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the stream went on after its token was revoked")
	}
}
