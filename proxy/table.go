package proxy

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// table is the routing table: immutable once stored, replaced whole (copy on write) by
// Set, so a request sees one consistent set of backends per route.
type table struct {
	routes map[string]*route
}

// route is one key's backend set. Set builds a new route for every change; routes of
// other keys carry over to the next table as they are.
type route struct {
	backends []*backend
	list     []Backend     // what Backends returns, in Set's order
	next     atomic.Uint32 // round-robin start for ties
}

// backend is the proxy's state for one Backend. The same value is shared by every table
// and route that holds its ID, so its in-flight count survives set switches.
type backend struct {
	Backend
	inFlight atomic.Int64
	// retired is set once no route holds the backend any more. A request that counted
	// itself in and then finds retired set backs out and picks again (see acquire).
	retired atomic.Bool
	// downUntil (UnixNano) is set when connecting fails, so other requests avoid the
	// backend for a moment instead of paying a failed dial and a retry each.
	downUntil atomic.Int64
	// used (UnixNano) is when the backend last got a request, or joined a route.
	used atomic.Int64
}

// downFor is how long a backend that refused a connection is avoided while its route
// has other backends. Health checks, not the proxy, decide when it leaves the route.
const downFor = time.Second

func (b *backend) release() { b.inFlight.Add(-1) }

func (b *backend) markDown() { b.downUntil.Store(time.Now().Add(downFor).UnixNano()) }

// down reports whether b refused a connection less than downFor ago. It reads the
// clock only for backends that ever failed, and at most once per call of pick.
func (b *backend) down(now *int64) bool {
	until := b.downUntil.Load()
	if until == 0 {
		return false
	}
	if *now == 0 {
		*now = time.Now().UnixNano()
	}
	return *now < until
}

// pick returns the backend with the fewest requests in flight, skipping exclude and,
// while others are up, backends that recently refused connections. Ties go round robin
// from a start that moves on every call. It returns nil if no backend is left.
func (rt *route) pick(exclude *backend) *backend {
	n := len(rt.backends)
	if n == 1 {
		if b := rt.backends[0]; b != exclude {
			return b
		}
		return nil
	}
	start := int(rt.next.Add(1) % uint32(n))
	var (
		best     *backend
		bestLoad int64 = math.MaxInt64
		bestDown bool
		now      int64
	)
	for i := range n {
		b := rt.backends[(start+i)%n]
		if b == exclude {
			continue
		}
		down, load := b.down(&now), b.inFlight.Load()
		if best == nil || (bestDown && !down) || (down == bestDown && load < bestLoad) {
			best, bestLoad, bestDown = b, load, down
		}
	}
	return best
}

// acquire picks a backend of route key from the current table and counts one request
// in flight on it; the caller must release it. It returns nil if the route does not
// exist or has no backend but exclude.
//
// Counting in, then checking retired, is what lets Drain trust the count: Set stores
// the new table before it marks removed backends retired, and Drain runs after Set. So
// a request either counted itself in before the mark (Drain sees it) or sees the mark
// and backs out, and then the table it reloads no longer holds that backend.
func (p *Proxy) acquire(key string, exclude *backend) *backend {
	for range 8 { // each retry means a Set happened in between; more than a few is absurd
		rt := p.table.Load().routes[key]
		if rt == nil {
			return nil
		}
		b := rt.pick(exclude)
		if b == nil {
			return nil
		}
		b.inFlight.Add(1)
		if !b.retired.Load() {
			b.used.Store(time.Now().UnixNano())
			return b
		}
		b.release()
	}
	return nil
}

// Set atomically replaces the backend set of route key (see Key; matched without regard
// to case). An empty or nil set removes the route. Requests already in flight on a
// backend the new set drops finish there; Drain waits for them. Backends without an ID
// or an Addr are skipped, and an ID listed twice keeps its first Addr.
func (p *Proxy) Set(key string, backends []Backend) {
	key = strings.ToLower(key)
	p.mu.Lock()
	defer p.mu.Unlock()

	old := p.table.Load()
	next := &table{routes: maps.Clone(old.routes)}
	if next.routes == nil {
		next.routes = map[string]*route{}
	}
	rt := &route{}
	seen := map[string]bool{}
	for _, nb := range backends {
		if nb.ID == "" || nb.Addr == "" {
			p.log.Warn("proxy: backend without ID or address skipped", "route", key, "id", nb.ID, "addr", nb.Addr)
			continue
		}
		if seen[nb.ID] {
			continue
		}
		seen[nb.ID] = true
		b := p.live[nb.ID] // a retired backend is never reused: it stays retired
		if b == nil || b.Addr != nb.Addr {
			b = &backend{Backend: nb}
			b.used.Store(time.Now().UnixNano())
			p.fast.revive(nb.Addr) // an address Abort declared dead serves again
		}
		rt.backends = append(rt.backends, b)
		rt.list = append(rt.list, nb)
	}
	if len(rt.backends) == 0 {
		delete(next.routes, key)
	} else {
		next.routes[key] = rt
	}

	live := map[string]*backend{}
	for _, r := range next.routes {
		for _, b := range r.backends {
			live[b.ID] = b
		}
	}
	p.table.Store(next) // the switch; from here on new requests pick from next
	addrs := map[string]bool{}
	for _, b := range live {
		addrs[b.Addr] = true
	}
	for id, b := range p.live {
		if live[id] != b {
			b.retired.Store(true)
			p.retiring[b] = struct{}{}
			if !addrs[b.Addr] {
				// Its idle keep-alive connections will not be used again; requests
				// still in flight there close theirs after the idle timeout.
				p.fast.closeIdleTo(b.Addr)
			}
		}
	}
	p.live = live
	p.pruneLocked()
	p.log.Debug("proxy: route set", "route", key, "backends", len(rt.backends))
}

// pruneLocked forgets retired backends that have nothing in flight. A request can still
// count itself in on one, but it then sees the retired mark and backs out.
func (p *Proxy) pruneLocked() {
	for b := range p.retiring {
		if b.inFlight.Load() == 0 {
			delete(p.retiring, b)
		}
	}
}

// Backends returns a copy of route key's backend set, or nil if there is no such route.
func (p *Proxy) Backends(key string) []Backend {
	rt := p.table.Load().routes[strings.ToLower(key)]
	if rt == nil {
		return nil
	}
	return append([]Backend(nil), rt.list...)
}

// LastUsed is when route key last got a request (or, when none came since, when its
// newest backend joined it); zero when there is no such route.
func (p *Proxy) LastUsed(key string) time.Time {
	rt := p.table.Load().routes[strings.ToLower(key)]
	if rt == nil {
		return time.Time{}
	}
	var last int64
	for _, b := range rt.backends {
		last = max(last, b.used.Load())
	}
	return time.Unix(0, last)
}

// InFlight returns the number of requests in progress on backend id, whether or not a
// route still holds it. An open WebSocket or event stream counts until it closes.
func (p *Proxy) InFlight(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.inFlightLocked(id))
}

func (p *Proxy) inFlightLocked(id string) int64 {
	var n int64
	if b := p.live[id]; b != nil {
		n += b.inFlight.Load()
	}
	for b := range p.retiring {
		if b.ID == id {
			n += b.inFlight.Load()
		}
	}
	return n
}

// drainPoll is how often Drain looks at the in-flight counts. Polling keeps the request
// path free of any wake-up work; a deploy does not mind 10 ms.
const drainPoll = 10 * time.Millisecond

// Drain waits until none of the backends ids has a request in flight, or until ctx is
// done, and then returns an error wrapping ctx's. Call it after a Set that removed ids;
// on a backend some route still holds, it returns at the first moment it sees the
// backend idle, and new requests may arrive right after. Unknown ids count as idle.
func (p *Proxy) Drain(ctx context.Context, ids ...string) error {
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		p.mu.Lock()
		var busy int64
		for _, id := range ids {
			busy += p.inFlightLocked(id)
		}
		if busy == 0 {
			p.pruneLocked()
		}
		p.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy: drain %s: %d requests still in flight: %w",
				strings.Join(ids, ", "), busy, ctx.Err())
		case <-tick.C:
		}
	}
}

// Abort declares the backends ids dead: a backend gone with its machine, whose requests
// in flight would otherwise wait for an answer that never comes. Their connections are
// closed at once, so each request in flight there fails now, and retryTransport sends
// the safe ones (GET, HEAD, OPTIONS without a body) to another backend of the route;
// connecting there fails at once until a backend at that address joins a route again.
// Call it after a Set that removed them; Drain is for backends that finish their work.
func (p *Proxy) Abort(ids ...string) {
	p.mu.Lock()
	var addrs []string
	for _, id := range ids {
		if b := p.live[id]; b != nil {
			addrs = append(addrs, b.Addr)
		}
		for b := range p.retiring {
			if b.ID == id {
				addrs = append(addrs, b.Addr)
			}
		}
	}
	p.mu.Unlock()
	for _, a := range addrs {
		p.fast.abortTo(a)
	}
}
