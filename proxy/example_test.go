package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/drover-cd/drover/proxy"
)

// A blue-green deploy: route the service to the new instance, wait for the requests
// still on the old one, then stop it.
func Example() {
	instance := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s answers for %s", name, r.Header.Get("X-Forwarded-Host"))
		}))
	}
	blue, green := instance("blue"), instance("green")
	defer green.Close()

	p := proxy.New(nil)
	front := httptest.NewServer(p)
	defer front.Close()
	key := proxy.Key("catalog", "staging")
	p.Set(key, []proxy.Backend{{ID: "blue", Addr: blue.Listener.Addr().String()}})

	p.Set(key, []proxy.Backend{{ID: "green", Addr: green.Listener.Addr().String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Drain(ctx, "blue"); err != nil {
		fmt.Println(err)
	}
	blue.Close()

	req, _ := http.NewRequest(http.MethodGet, front.URL, nil)
	req.Host = key
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(string(body))
	// Output: green answers for catalog.staging.localhost
}
