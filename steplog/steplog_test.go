package steplog

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer a follower writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestFollowSeesLinesAsTheyAreWrittenAndEndsAtClose(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteLine("first")
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- s.Follow(context.Background(), 1, 0, true, &out, nil) }()

	waitFor(t, func() bool { return out.String() == "first\n" })
	w.WriteLine("second")
	waitFor(t, func() bool { return out.String() == "first\nsecond\n" })
	select {
	case <-done:
		t.Fatal("Follow returned while the log was still being written")
	default:
	}
	w.WriteLine("last")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || out.String() != "first\nsecond\nlast\n" {
			t.Fatalf("Follow: %v, got %q", err, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not end when the log was closed")
	}
}

func TestFlushedLinesAreOnDiskWithoutClose(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(dir)
	w, err := s.Create(7, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteLine("acknowledged")
	// A server killed now keeps what reached the file: read it as another process would.
	waitFor(t, func() bool {
		data, _ := os.ReadFile(s.path(7, 2))
		return string(data) == "acknowledged\n"
	})
}

func TestFollowOfAFinishedOrMissingLog(t *testing.T) {
	s, _ := New(t.TempDir())
	var out bytes.Buffer
	if err := s.Follow(context.Background(), 9, 0, false, &out, nil); err != nil || out.Len() != 0 {
		t.Fatalf("missing log: %v %q", err, out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*FlushEvery)
	defer cancel()
	if err := s.Follow(ctx, 9, 0, true, &out, nil); err != nil {
		t.Fatalf("following a log that never starts must end with ctx: %v", err)
	}
	w, _ := s.Create(9, 1)
	w.WriteLine("a")
	w.WriteLine("b")
	w.Close()
	out.Reset()
	if err := s.Follow(context.Background(), 9, 1, true, &out, nil); err != nil || out.String() != "a\nb\n" {
		t.Fatalf("closed log: %v %q", err, out.String())
	}
	w.WriteLine("after close") // ignored, not a panic
	if strings.Contains(out.String(), "after") {
		t.Error("a line written after Close appeared")
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
