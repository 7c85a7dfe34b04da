package handover

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A successor takes the running server's socket: a connection queued on it before the
// handover, never accepted by the running server, is accepted by the successor; the
// running server hears that the successor is ready.
func TestSuccessorTakesTheSocketsWithTheirQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handover.sock")
	offer, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer offer.Close()
	if _, err := Listen(path); err == nil {
		t.Errorf("a second offer on a live socket was accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Queued in the socket's accept queue: the running server never accepts it.
	early, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	ready := make(chan error, 1)
	go func() {
		req := <-offer.Requests()
		if err := req.Send(map[string]net.Listener{"api": ln}); err != nil {
			ready <- err
			return
		}
		ready <- req.WaitReady(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	taken, err := Take(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	got := taken.Listener("api")
	if got == nil || got.Addr().String() != ln.Addr().String() {
		t.Fatalf("took %v, want the listener on %s", got, ln.Addr())
	}
	ln.Close() // the running server stops accepting: the socket lives on in the successor
	go func() { early.Write([]byte("hello")) }()
	c, err := got.Accept()
	if err != nil {
		t.Fatalf("the successor could not accept the queued connection: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v", buf, err)
	}
	c.Close()
	late, err := net.Dial("tcp", got.Addr().String())
	if err != nil {
		t.Fatalf("a new connection after the handover: %v", err)
	}
	late.Close()
	if err := taken.Ready(); err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		t.Errorf("the running server's wait: %v", err)
	}
	got.Close()
}

// With no server running, Take says so and the successor starts afresh; a refusal is
// an error that says why; a successor that goes away is noticed.
func TestTakeWithoutAServerOrRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Take(context.Background(), filepath.Join(dir, "none.sock")); !errors.Is(err, ErrNone) {
		t.Errorf("Take with nobody there: %v", err)
	}
	path := filepath.Join(dir, "handover.sock")
	offer, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer offer.Close()
	go func() { (<-offer.Requests()).Refuse("a deploy is under way") }()
	if _, err := Take(context.Background(), path); err == nil || !strings.Contains(err.Error(), "a deploy is under way") {
		t.Errorf("refused Take: %v", err)
	}
	waited := make(chan error, 1)
	go func() {
		req := <-offer.Requests()
		req.Send(map[string]net.Listener{})
		waited <- req.WaitReady(context.Background())
	}()
	taken, err := Take(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	taken.Close()
	if err := <-waited; err == nil {
		t.Errorf("a successor that went away counted as ready")
	}
}

// Only the server's user may ask for its sockets: the socket is 0600.
func TestOfferIsTheServersUsersOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handover.sock")
	offer, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer offer.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("handover socket mode %v, want 0600", fi.Mode().Perm())
	}
}

// A process that reaches the socket but cannot read the key (a confined step) gets no
// socket, and the offer goes on for the server's own successor.
func TestTakeWithoutTheKeyGetsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handover.sock")
	offer, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer offer.Close()
	if fi, err := os.Stat(path + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	for _, ask := range []string{"take\n", "take wrong\n", "take \n"} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(ask))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil {
			t.Errorf("asked %q: got %d bytes, %v", ask, n, err)
		}
		c.Close()
	}
	select {
	case req := <-offer.Requests():
		t.Errorf("a request without the key was delivered: %v", req)
	default:
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		req := <-offer.Requests()
		req.Send(map[string]net.Listener{"api": ln})
		req.WaitReady(context.Background())
	}()
	taken, err := Take(context.Background(), path)
	if err != nil {
		t.Fatalf("the server's own successor: %v", err)
	}
	taken.Ready()
}
