package source

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drover-cd/drover/internal/fulldisk"
)

// lockedBuffer is a bytes.Buffer for a logger written from request goroutines.
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

// A push to a server whose disk is full fails with a message saying so, the server logs
// it, the repository keeps what it had, and the same push works once there is space.
func TestHostingFullDisk(t *testing.T) {
	disk := fulldisk.Mount(t, 1<<20)
	h, _, base := serveHosting(t, true, nil)
	h.Root = filepath.Join(disk, "repos")
	log := &lockedBuffer{}
	h.Log = slog.New(slog.NewTextHandler(log, nil))
	work := workRepo(t)
	first := commit(t, work, "first", map[string]string{"a.txt": "a"})
	gitTB(t, work, "push", "-q", base+"app.git", "main")
	filler := fulldisk.Fill(t, disk)

	for _, c := range []struct {
		what string
		size int
	}{{"a chunked push", 300 << 10}, {"a small push", 100}} {
		gitTB(t, work, "reset", "-q", "--hard", first)
		big := make([]byte, c.size) // random: does not compress
		rand.Read(big)
		commit(t, work, c.what, map[string]string{"big.bin": string(big)})
		out, err := gitOut(work, "-c", "http.postBuffer=65536", "push", base+"app.git", "main")
		t.Logf("%s: %s", c.what, out)
		if err == nil || !strings.Contains(strings.ToLower(out), "no space left on device") {
			t.Errorf("%s on a full disk: %v\n%s\nwant a failure saying no space left on device", c.what, err, out)
		}
		if got := gitTB(t, "", "ls-remote", base+"app.git", "refs/heads/main"); !strings.HasPrefix(got, first) {
			t.Errorf("after %s failed, main is %q; want %s", c.what, got, first)
		}
	}
	if !strings.Contains(log.String(), "no space left on device") {
		t.Errorf("the server's log does not mention the full disk:\n%s", log)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	gitTB(t, work, "push", "-q", base+"app.git", "main")
}
