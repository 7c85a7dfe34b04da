package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drover-cd/drover/handover"
)

// handoverSocket is where a running server offers its sockets to a successor.
func (o *serverOptions) handoverSocket() string { return filepath.Join(o.data, "handover.sock") }

// takeOver asks a server already running on this data folder for its sockets: starting
// a new drover server there is an in-place upgrade. nil (and no error) when none runs.
// It waits while the running server finishes its runs (up to a few minutes).
func (o *serverOptions) takeOver(ctx context.Context, log *slog.Logger) (*handover.Taken, error) {
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	taken, err := handover.Take(tctx, o.handoverSocket())
	if errors.Is(err, handover.ErrNone) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("a drover server runs on %s and did not hand over: %w", o.data, err)
	}
	names := make([]string, 0, len(taken.Listeners))
	for name := range taken.Listeners {
		names = append(names, name)
	}
	log.Info("taking over from the server running on this data folder", "sockets", len(names))
	return taken, nil
}

// listenOr is the handed-over listener, or a new one on addr.
func listenOr(taken net.Listener, addr string, log *slog.Logger, flag string) (net.Listener, error) {
	if taken == nil {
		return net.Listen("tcp", addr)
	}
	if want, err := net.ResolveTCPAddr("tcp", addr); err == nil && want.Port != 0 && want.String() != taken.Addr().String() {
		log.Warn("listening where the previous server did, not where "+flag+" says; restart without a running server to move",
			"flag", flag, "asked", addr, "listening", taken.Addr().String())
	}
	return taken, nil
}

// inheritedRoutes are the route listeners among the handed-over sockets.
func inheritedRoutes(taken *handover.Taken) map[string]net.Listener {
	out := map[string]net.Listener{}
	if taken == nil {
		return out
	}
	for name := range taken.Listeners {
		if strings.HasPrefix(name, "route:") {
			out[name] = taken.Listener(name)
		}
	}
	return out
}

// successor watches the handover socket: when a new server asks for this one's sockets,
// it records the request and calls stop, and this server winds down by handOver.
type successor struct {
	offer *handover.Offer
	req   atomic.Pointer[handover.Request]
	done  chan struct{} // closed once no more requests come
}

// offerSockets starts offering this server's sockets to a successor; nil when the
// socket cannot be made (upgrades then restart instead, which the log says).
func (o *serverOptions) offerSockets(log *slog.Logger, stop func()) *successor {
	offer, err := handover.Listen(o.handoverSocket())
	if err != nil {
		log.Warn("no in-place upgrades: a new server on this data folder cannot take over the sockets", "err", err)
		return nil
	}
	s := &successor{offer: offer, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for req := range offer.Requests() {
			if !s.req.CompareAndSwap(nil, req) {
				req.Refuse("another server is taking over already")
				continue
			}
			log.Info("a new server asks to take over: handing over once runs and healing have stopped")
			stop()
		}
	}()
	return s
}

// pending is the successor waiting for the sockets, nil when none asked.
func (s *successor) pending() *handover.Request {
	if s == nil {
		return nil
	}
	return s.req.Load()
}

// close stops offering, and returns once a request that came meanwhile is recorded
// (pending has it). Idempotent.
func (s *successor) close() {
	if s != nil {
		s.offer.Close()
		<-s.done
	}
}

// handOver passes the sockets to the successor and waits until it serves on them. The
// caller has stopped its runs and healing: the successor recovers and adopts what they
// left. This server's listeners stay open and accepting until then, so no connection is
// refused in between.
func handOver(req *handover.Request, sockets map[string]net.Listener, log *slog.Logger) bool {
	if err := req.Send(sockets); err != nil {
		log.Error("hand the sockets over; stopping as on SIGTERM", "err", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := req.WaitReady(ctx); err != nil {
		log.Error("the new server did not take over; stopping as on SIGTERM (services go on serving)", "err", err)
		return false
	}
	log.Info("the new server serves on the sockets: draining requests and exiting")
	return true
}

// closing wraps an HTTP server's handler so that, once its sockets are in a successor's
// hands, every answer it still gives says Connection: close: each connection it accepted
// is closed by the server right after a request, never while a client may be sending
// one (closing an idle keep-alive connection races the client's next request, which a
// client such as wrk then counts as failed). http.Server.Shutdown, later, closes what is
// left: connections idle all along.
type closing struct {
	h    http.Handler
	stop atomic.Bool
}

func (c *closing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.stop.Load() {
		w.Header().Set("Connection", "close")
	}
	c.h.ServeHTTP(w, r)
}

// quiesce stops accepting on ln (the socket lives on in the successor) and makes srv's
// handler (a *closing) end each connection after its next answer.
func quiesce(srv *http.Server, ln net.Listener) {
	ln.Close()
	if c, ok := srv.Handler.(*closing); ok {
		c.stop.Store(true)
	}
}

// acceptedGrace is how long a server that handed over its sockets waits, after it
// stopped accepting, for connections it accepted just before to send their requests.
const acceptedGrace = time.Second
