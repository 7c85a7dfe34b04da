//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package artifact

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPackRejectsSpecialFiles(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "dist"), 0o755))
	must(t, syscall.Mkfifo(filepath.Join(root, "dist", "pipe"), 0o644))
	_, err := s.Pack(context.Background(), root, "dist")
	if err == nil || !strings.Contains(err.Error(), `"dist/pipe"`) {
		t.Fatalf("Pack of a tree with a FIFO: %v, want an error naming dist/pipe", err)
	}
	if _, err := s.Pack(context.Background(), root, "dist/pipe"); err == nil {
		t.Fatal("Pack of a FIFO succeeded")
	}
	assertNoTemps(t, s)
}

// TestPackIgnoresUmask builds the same tree under a restrictive umask. Not
// parallel: the umask is process-wide.
func TestPackIgnoresUmask(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, sampleTree, styleA)
	old := syscall.Umask(0o077)
	func() {
		defer syscall.Umask(old)
		st := styleB
		st.fileMode, st.execMode, st.dirMode = 0o400, 0o500, 0o700
		writeTree(t, b, sampleTree, st)
	}()
	if da, db := pack(t, s, a, "dist"), pack(t, s, b, "dist"); da.Digest != db.Digest {
		t.Fatalf("umask changed the digest: %s vs %s", da.Digest, db.Digest)
	}
}
