package proxy

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// wsAccept is the Sec-WebSocket-Accept answer to key (RFC 6455, section 4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// writeFrame writes one unfragmented text frame with a payload under 126 bytes,
// masked as a client must (RFC 6455, section 5.3).
func writeFrame(w io.Writer, payload string, mask []byte) error {
	frame := []byte{0x81, byte(len(payload))}
	if mask != nil {
		frame[1] |= 0x80
		frame = append(frame, mask...)
	}
	for i := range len(payload) {
		c := payload[i]
		if mask != nil {
			c ^= mask[i%4]
		}
		frame = append(frame, c)
	}
	_, err := w.Write(frame)
	return err
}

// readFrame reads what writeFrame writes and returns the unmasked payload.
func readFrame(r io.Reader) (string, error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return "", err
	}
	var mask []byte
	if head[1]&0x80 != 0 {
		mask = make([]byte, 4)
		if _, err := io.ReadFull(r, mask); err != nil {
			return "", err
		}
	}
	payload := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(r, payload); err != nil {
		return "", err
	}
	for i := range payload {
		if mask != nil {
			payload[i] ^= mask[i%4]
		}
	}
	return string(payload), nil
}

// wsEcho is a backend that upgrades to WebSocket and echoes text frames.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		http.Error(w, "not a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	if rw.Flush() != nil {
		return
	}
	for {
		msg, err := readFrame(rw)
		if err != nil || writeFrame(rw, msg, nil) != nil || rw.Flush() != nil {
			return
		}
	}
}

func TestWebSocketUpgradeEchoes(t *testing.T) {
	p := New(nil)
	ws, _ := startBackend(t, "ws", wsEcho)
	key := Key("chat", "prod")
	p.Set(key, []Backend{ws})
	url := startProxy(t, p)

	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The handshake of RFC 6455, section 1.3, whose key has a known answer.
	fmt.Fprintf(conn, "GET /socket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %s, want 101", res.Status)
	}
	if got := res.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	for _, msg := range []string{"hello", "through the proxy", "again"} {
		if err := writeFrame(conn, msg, []byte{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	if n := p.InFlight("ws"); n != 1 {
		t.Errorf("InFlight during the connection = %d, want 1", n)
	}
	conn.Close()
	waitFor(t, func() bool { return p.InFlight("ws") == 0 })
}

// TestStreamsArriveOneByOne checks that each piece of a streamed response reaches the
// client while the backend waits, before it sends the next: the proxy buffers nothing.
func TestStreamsArriveOneByOne(t *testing.T) {
	for name, contentType := range map[string]string{
		"server-sent events": "text/event-stream",
		"chunked stream":     "application/x-ndjson",
	} {
		t.Run(name, func(t *testing.T) {
			p := New(nil)
			next := make(chan struct{})
			b, _ := startBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", contentType)
				rc := http.NewResponseController(w)
				for i := range 3 {
					fmt.Fprintf(w, "data: event %d\n\n", i)
					if rc.Flush() != nil {
						return
					}
					select {
					case <-next:
					case <-r.Context().Done():
						return
					}
				}
			})
			key := Key("feed", "prod")
			p.Set(key, []Backend{b})
			url := startProxy(t, p)

			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
			req.Host = key
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if ct := res.Header.Get("Content-Type"); ct != contentType {
				t.Fatalf("Content-Type %q", ct)
			}
			br := bufio.NewReader(res.Body)
			for i := range 3 {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("event %d: %v (buffered by the proxy?)", i, err)
				}
				if want := fmt.Sprintf("data: event %d\n", i); line != want {
					t.Fatalf("got %q, want %q", line, want)
				}
				if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
					t.Fatalf("event %d: no blank line: %q %v", i, blank, err)
				}
				next <- struct{}{} // only now may the backend send the next event
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the last event: %q %v", rest, err)
			}
		})
	}
}
