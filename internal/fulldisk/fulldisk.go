// Package fulldisk gives tests a small filesystem of their own to fill, so that what a
// full disk does to a push or an upload is tested on a real one.
package fulldisk

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new temporary folder, returns the folder and
// unmounts it when the test ends, even when it fails. Mounting needs root: elsewhere the
// test is skipped, except with CI set (.ci/run runs as root), where it fails.
func Mount(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)+",mode=0755"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount a tmpfs for a full-disk test (CI runs as root): %v", err)
		}
		t.Skipf("mounting a tmpfs needs root (%v): run as root to test a full disk", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until its filesystem has no space left and returns the
// file's path: removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
}
