// Package edge keeps standalone proxies in step with the server (issue 17). A
// standalone proxy (`drover proxy`) runs a Follower: it long-polls the server's route
// table (GET /api/v1/routes?wait=VERSION&proxy=NAME), applies each new table to its
// proxy.Proxy and keeps the last one on disk, so that it serves while the server is
// down or restarting. The server keeps a Tracker of the proxies that follow it, so that a
// deploy can wait, before it retires the instances it replaced, until every proxy
// serves the switched table.
//
// A table's version is "EPOCH.N": EPOCH names one run of the server (it changes when the
// server restarts), N grows with every change of the table within it. Versions of one
// epoch are ordered by N; versions of different epochs are not ordered at all.
package edge

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PollTimeout is how long the server holds a follow request whose table has not
// changed before it answers with the same table. The Follower's HTTP timeout and the
// Tracker's idea of a proxy seen recently are derived from it.
const PollTimeout = 25 * time.Second

// Table is the route table as GET /api/v1/routes answers it, and as a Follower keeps it
// on disk.
type Table struct {
	Version string  `json:"version"`
	Routes  []Route `json:"routes"`
}

// Route is one host of the table: where the requests for a service in an environment go.
type Route struct {
	Host        string     `json:"host"` // the proxy's key: SERVICE.ENV.localhost
	Service     string     `json:"service"`
	Environment string     `json:"environment"`
	Instances   []Instance `json:"instances"`
	// Discovery is the loopback address instances reach this service at (<NAME>_URL),
	// for a proxy that serves discovery (Discovery); "" for none.
	Discovery string `json:"discovery,omitempty"`
}

// Instance is one address a route's requests go to.
type Instance struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // host:port, plain HTTP/1.1
}

// version is a parsed "EPOCH.N".
type version struct {
	epoch string
	n     uint64
}

// parseVersion parses "EPOCH.N". EPOCH is compared as it is: only equality matters.
func parseVersion(s string) (version, error) {
	epoch, n, ok := strings.Cut(s, ".")
	if !ok || epoch == "" {
		return version{}, fmt.Errorf("route table version %q: want EPOCH.N", s)
	}
	num, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return version{}, fmt.Errorf("route table version %q: want EPOCH.N: %w", s, err)
	}
	return version{epoch: epoch, n: num}, nil
}

// Serves reports whether a proxy that serves version have serves version want: the
// same version or a newer one of the same epoch. A version of another epoch does not:
// it is a table of another run of the server. A version that does not parse serves
// nothing.
func Serves(have, want string) bool {
	h, err := parseVersion(have)
	if err != nil {
		return false
	}
	w, err := parseVersion(want)
	if err != nil {
		return false
	}
	return h.epoch == w.epoch && h.n >= w.n
}
