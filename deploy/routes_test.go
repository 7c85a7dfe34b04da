package deploy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drover-cd/drover/proxy"
)

// A call through <SERVICE>_URL, the route's loopback listener, reaches the instance
// with the route's host name as Host, as a call by that name through the proxy would:
// the proxy passes Host through, and the listener's own address is no name.
func TestRouteListenerSendsRouteHost(t *testing.T) {
	ctx := context.Background()
	p := proxy.New(nil)
	m := New(ctx, Config{Proxy: p})
	t.Cleanup(func() { m.Shutdown(ctx, false) })

	type seen struct{ host, fwdHost string }
	got := make(chan seen, 1)
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.Header.Get("X-Forwarded-Host")}
	}))
	t.Cleanup(inst.Close)
	key := proxy.Key("db", "shop")
	p.Set(key, []proxy.Backend{{ID: "db-1", Addr: inst.Listener.Addr().String()}})

	u, err := m.URL("shop", "db")
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(u + "/rows")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if s := <-got; s.host != key || s.fwdHost != key {
		t.Errorf("instance saw Host %q, X-Forwarded-Host %q; want %q for both", s.host, s.fwdHost, key)
	}
}
