package deploy

import (
	"context"
	"net"
	"testing"

	"github.com/drover-cd/drover/proxy"
)

// A restarted server listens for each route where the previous one did, so instances
// that outlived it reach what they require at the address they were given; an address
// another program took meanwhile is replaced by a new one.
func TestDiscoveryAddressesOutliveTheServer(t *testing.T) {
	dir := t.TempDir()
	first := New(context.Background(), Config{Proxy: proxy.New(nil), Dir: dir})
	api, err := first.URL("staging", "api")
	if err != nil {
		t.Fatal(err)
	}
	web, _ := first.URL("staging", "web")
	first.Shutdown(context.Background(), false)

	second := New(context.Background(), Config{Proxy: proxy.New(nil), Dir: dir})
	defer second.Shutdown(context.Background(), false)
	if again, err := second.URL("staging", "api"); err != nil || again != api {
		t.Errorf("after a restart api is at %q (%v), was %q", again, err, api)
	}
	// web's address is taken by another program meanwhile.
	ln, err := net.Listen("tcp", web[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if again, err := second.URL("staging", "web"); err != nil || again == web {
		t.Errorf("web's taken address: %q (%v)", again, err)
	}
	// An environment that goes away takes its addresses with it.
	second.closeRoutes("staging")
	third := New(context.Background(), Config{Proxy: proxy.New(nil), Dir: dir})
	defer third.Shutdown(context.Background(), false)
	if len(third.addrs.addrs) != 0 {
		t.Errorf("addresses of a closed environment kept: %v", third.addrs.addrs)
	}
}
