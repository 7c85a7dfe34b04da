package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRetriesOnDeadBackend(t *testing.T) {
	p, logs := newLogged()
	live, _ := startBackend(t, "live", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "live %s %s", r.Method, body)
	})
	dead := Backend{ID: "dead", Addr: deadAddr(t)}
	key := Key("catalog", "staging")
	// Dead first: round robin sends every other request to it until it is marked down.
	p.Set(key, []Backend{dead, live})
	url := startProxy(t, p)

	for i := range 20 {
		method, body := http.MethodGet, ""
		if i%2 == 1 {
			method, body = http.MethodPost, fmt.Sprintf("payload %d", i)
		}
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Host = key
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := "live " + method + " " + body; res.StatusCode != http.StatusOK || string(got) != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, res.StatusCode, got, want)
		}
		// Forget the down mark so the next request may pick the dead backend again.
		p.live["dead"].downUntil.Store(0)
	}
	if n := p.InFlight("dead") + p.InFlight("live"); n != 0 {
		t.Errorf("%d requests still counted in flight", n)
	}
	if !strings.Contains(logs.String(), "retrying on another") {
		t.Errorf("no retry logged:\n%s", logs)
	}
}

func TestDeadRouteAnswers502AndLogs(t *testing.T) {
	p, logs := newLogged()
	key := Key("catalog", "staging")
	p.Set(key, []Backend{{ID: "dead", Addr: deadAddr(t)}})
	url := startProxy(t, p)

	code, body := get(t, http.DefaultClient, url, key, "/")
	if code != http.StatusBadGateway || body != "drover: bad gateway: catalog.staging.localhost: could not connect to any instance of the service\n" {
		t.Fatalf("%d %q", code, body)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "backend=dead") {
		t.Errorf("no warning naming the backend:\n%s", out)
	}
	if n := p.InFlight("dead"); n != 0 {
		t.Errorf("InFlight = %d after the failure", n)
	}
}
