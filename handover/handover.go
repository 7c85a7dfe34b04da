// Package handover passes a running server's listening sockets to the server that takes
// its place on the same data folder: an in-place upgrade in which no connection is
// refused. The two share each socket (the successor gets duplicates of its file
// descriptors over a Unix socket, SCM_RIGHTS), so connections waiting in its accept
// queue are served by whichever accepts them; SO_REUSEPORT alone would drop the ones
// queued on the socket that closes.
//
// The exchange, on the Unix socket DATA/handover.sock:
//
//	successor: "take KEY\n", KEY read from DATA/handover.sock.key (0600), which the
//	           running server wrote: a process that may connect to the socket but not
//	           read the server's files (a step confined by Landlock) gets nothing
//	running:   finishes its own work (runs, healing), then one message: the sockets'
//	           names as JSON, with their descriptors attached
//	successor: starts serving on them, then "ready\n"
//	running:   stops accepting, drains its requests and exits
package handover

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover-cd/drover/atomicfile"
)

// maxSockets bounds the descriptors one handover carries.
const maxSockets = 1024

// Offer is the running server's side: it waits for a successor to ask.
type Offer struct {
	ln   *net.UnixListener
	path string
	key  string // what a successor must send (keyFile)
	reqs chan *Request
	once sync.Once
	err  error
}

// keyFile is where the key a successor must present is kept, beside the socket.
func keyFile(path string) string { return path + ".key" }

// Listen offers this server's sockets on path, a Unix socket (mode 0600) in the data
// folder. A socket file left by a server that is gone is replaced; one a live server
// answers on is an error.
func Listen(path string) (*Offer, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("handover: another server answers on %s", path)
	}
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	// The successor listens on the same path once this server is done offering; this
	// server's Close must not take the successor's socket file with it.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("handover: %w", err)
	}
	key := rand.Text()
	if err := atomicfile.Write(keyFile(path), []byte(key+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("handover: %w", err)
	}
	o := &Offer{ln: ln, path: path, key: key, reqs: make(chan *Request)}
	go o.accept()
	return o, nil
}

func (o *Offer) accept() {
	for {
		c, err := o.ln.AcceptUnix()
		if err != nil {
			close(o.reqs)
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		got, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "take ")
		if err != nil || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(o.key)) != 1 {
			c.Close()
			continue
		}
		c.SetReadDeadline(time.Time{})
		o.reqs <- &Request{c: c}
	}
}

// Requests delivers each successor that asks for the sockets; it is closed by Close.
func (o *Offer) Requests() <-chan *Request { return o.reqs }

// Close stops offering; Requests is closed once a request accepted meanwhile is
// delivered. The socket file stays for the successor's Listen to replace. Idempotent.
func (o *Offer) Close() error {
	o.once.Do(func() { o.err = o.ln.Close() })
	return o.err
}

// Request is a successor waiting for the sockets.
type Request struct {
	c *net.UnixConn
}

// Send passes the listeners, by name, to the successor. They stay open here: this
// server goes on accepting on them until the successor is ready.
func (r *Request) Send(listeners map[string]net.Listener) error {
	if len(listeners) > maxSockets {
		return fmt.Errorf("handover: %d sockets, at most %d", len(listeners), maxSockets)
	}
	names := make([]string, 0, len(listeners))
	fds := make([]int, 0, len(listeners))
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for name, ln := range listeners {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("handover: socket %s (%T) has no descriptor to pass", name, ln)
		}
		f, err := fl.File() // a duplicate: closing it leaves ln open
		if err != nil {
			return fmt.Errorf("handover: socket %s: %w", name, err)
		}
		files = append(files, f)
		names = append(names, name)
		fds = append(fds, int(f.Fd()))
	}
	msg, err := json.Marshal(names)
	if err != nil {
		return err
	}
	_, _, err = r.c.WriteMsgUnix(append(msg, '\n'), syscall.UnixRights(fds...), nil)
	if err != nil {
		return fmt.Errorf("handover: send the sockets: %w", err)
	}
	return nil
}

// Refuse tells the successor why it gets no sockets (this server cannot stop now).
func (r *Request) Refuse(why string) {
	msg, _ := json.Marshal(map[string]string{"error": why})
	r.c.Write(append(msg, '\n'))
	r.c.Close()
}

// WaitReady waits until the successor serves on the sockets (nil), or gives up: the
// successor went away or ctx ended. Either way the request is done.
func (r *Request) WaitReady(ctx context.Context) error {
	defer r.c.Close()
	stop := context.AfterFunc(ctx, func() { r.c.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := bufio.NewReader(r.c).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("handover: the successor did not say it is ready: %w", ctx.Err())
		}
		return fmt.Errorf("handover: the successor went away before it was ready: %w", err)
	}
	if line != "ready\n" {
		return fmt.Errorf("handover: the successor said %q", strings.TrimSpace(line))
	}
	return nil
}

// Taken is the successor's side: the sockets it took over.
type Taken struct {
	Listeners map[string]net.Listener
	c         *net.UnixConn
}

// ErrNone is returned by Take when no server answers on the socket: start afresh.
var ErrNone = errors.New("handover: no running server to take over from")

// Take asks the server answering on path for its sockets and waits (up to ctx) until
// it has finished its own work and sent them. With no server there it returns ErrNone.
func Take(ctx context.Context, path string) (*Taken, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNone, err)
	}
	c := conn.(*net.UnixConn)
	key, err := os.ReadFile(keyFile(path))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handover: a server answers on %s, and its key cannot be read (run as the server's user): %w", path, err)
	}
	if _, err := c.Write([]byte("take " + strings.TrimSpace(string(key)) + "\n")); err != nil {
		c.Close()
		return nil, fmt.Errorf("handover: ask for the sockets: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(maxSockets*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handover: receive the sockets: %w", err)
	}
	fds, err := rights(oob[:oobn])
	if err != nil {
		c.Close()
		return nil, err
	}
	closeFDs := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	var refusal struct{ Error string }
	if json.Unmarshal(buf[:n], &refusal) == nil && refusal.Error != "" {
		closeFDs()
		c.Close()
		return nil, fmt.Errorf("handover: the running server refused: %s", refusal.Error)
	}
	var names []string
	if err := json.Unmarshal(buf[:n], &names); err != nil || len(names) != len(fds) {
		closeFDs()
		c.Close()
		return nil, fmt.Errorf("handover: a malformed message (%d names for %d sockets): %v", len(names), len(fds), err)
	}
	t := &Taken{Listeners: map[string]net.Listener{}, c: c}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), names[i])
		ln, err := net.FileListener(f) // duplicates fd again
		f.Close()
		if err != nil {
			t.Close()
			for _, fd := range fds[i+1:] {
				syscall.Close(fd)
			}
			return nil, fmt.Errorf("handover: socket %s: %w", names[i], err)
		}
		t.Listeners[names[i]] = ln
	}
	return t, nil
}

// rights are the descriptors a control message carries.
func rights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return nil, fmt.Errorf("handover: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// Listener returns the socket the running server listened on under name, or nil; it is
// the caller's from then on.
func (t *Taken) Listener(name string) net.Listener {
	if t == nil {
		return nil
	}
	ln := t.Listeners[name]
	delete(t.Listeners, name)
	return ln
}

// Ready tells the previous server that this one serves: it stops accepting and exits.
// Sockets nobody took are closed.
func (t *Taken) Ready() error {
	if t == nil {
		return nil
	}
	for name, ln := range t.Listeners {
		ln.Close()
		delete(t.Listeners, name)
	}
	defer t.c.Close()
	_, err := t.c.Write([]byte("ready\n"))
	return err
}

// Close gives up: the sockets taken are closed and the previous server, seeing the
// connection end, goes on serving.
func (t *Taken) Close() {
	if t == nil {
		return
	}
	for _, ln := range t.Listeners {
		ln.Close()
	}
	t.c.Close()
}
