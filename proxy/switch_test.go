package proxy

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSwitchUnderLoadLosesNoRequests is a blue-green deploy, 50 times over, under load:
// 20 clients send requests while the route switches to a fresh set of backends, the old
// set is drained and its servers stopped. Not one request may fail.
func TestSwitchUnderLoadLosesNoRequests(t *testing.T) {
	const (
		clients  = 20
		switches = 50
	)
	p := New(nil)
	key := Key("catalog", "staging")
	startSet := func(round int) ([]Backend, []*httptest.Server) {
		color := [2]string{"blue", "green"}[round%2]
		var set []Backend
		var servers []*httptest.Server
		for i := range 2 {
			id := fmt.Sprintf("%s-%d-%d", color, round, i)
			b, srv := startBackend(t, id, func(w http.ResponseWriter, r *http.Request) {
				// Up to 2 ms of work keeps requests in flight across the switches.
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				_, _ = io.WriteString(w, id)
			})
			set = append(set, b)
			servers = append(servers, srv)
		}
		return set, servers
	}
	set, servers := startSet(0)
	p.Set(key, set)
	url := startProxy(t, p)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var (
		stop     atomic.Bool
		ok       atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = key
				res, err := client.Do(req)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", res.Status, body)
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		})
	}

	for round := 1; round <= switches; round++ {
		nextSet, nextServers := startSet(round)
		p.Set(key, nextSet)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		var ids []string
		for _, b := range set {
			ids = append(ids, b.ID)
		}
		err := p.Drain(ctx, ids...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, srv := range servers {
			srv.Close() // would fail requests in flight, were there any
		}
		set, servers = nextSet, nextServers
		time.Sleep(5 * time.Millisecond) // let the load reach the new set
	}
	stop.Store(true)
	wg.Wait()

	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across %d switches; first: %s",
			len(failures), int(ok.Load())+len(failures), switches, failures[0])
	}
	if ok.Load() < switches {
		t.Fatalf("only %d requests in %d switches: the load did not run", ok.Load(), switches)
	}
	t.Logf("%d requests, %d switches, no failures", ok.Load(), switches)
}
