package source

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"runtime"
	"testing"
)

// A drover.yml of 2 MiB is refused by its size, read from git's header: the call allocates
// far less than the file, which the old ReadFile held twice (git's output, then a copy).
func TestReadFileLimitRefusesWithoutReading(t *testing.T) {
	work := workRepo(t)
	big := bytes.Repeat([]byte("# padding\n"), 2<<20/10)
	big = append(big, bytes.Repeat([]byte("#"), 2<<20-len(big))...)
	head := commit(t, work, "big", map[string]string{"drover.yml": string(big), "small.yml": "steps: []\n"})
	ctx := context.Background()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadFileLimit(ctx, work, head, "drover.yml", 1<<20)
	runtime.ReadMemStats(&after)
	var tooLarge *FileTooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, ErrFileTooLarge) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want a *FileTooLargeError", err)
	}
	if *tooLarge != (FileTooLargeError{File: "drover.yml", Size: 2 << 20, Limit: 1 << 20}) {
		t.Errorf("err = %+v", *tooLarge)
	}
	if got, want := err.Error(), "drover.yml: file is 2097152 bytes; the limit is 1 MiB"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 256<<10 {
		t.Errorf("refusing a 2 MiB file allocated %d bytes; it should not read the file", allocated)
	}

	for _, tc := range []struct {
		file  string
		limit int64
		want  []byte
	}{
		{"drover.yml", 2 << 20, big}, // exactly at the limit
		{"drover.yml", -1, big},      // no limit, as ReadFile
		{"small.yml", 1 << 20, []byte("steps: []\n")},
		{"small.yml", 10, []byte("steps: []\n")},
	} {
		got, err := ReadFileLimit(ctx, work, head, tc.file, tc.limit)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("ReadFileLimit(%s, %d) = %d bytes, %v; want %d bytes", tc.file, tc.limit, len(got), err, len(tc.want))
		}
	}
	if _, err := ReadFileLimit(ctx, work, head, "small.yml", 9); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("one byte over: err = %v, want ErrFileTooLarge", err)
	}
	if _, err := ReadFileLimit(ctx, work, head, "nope.yml", 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadFileLimit(ctx, t.TempDir(), head, "drover.yml", 1<<20); err == nil || errors.Is(err, ErrFileTooLarge) {
		t.Errorf("not a repository: err = %v, want git's error", err)
	}
}
