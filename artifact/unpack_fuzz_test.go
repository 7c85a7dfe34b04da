package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract extracts arbitrary layers, twice, into a folder beside another. Extract must
// never panic and never write outside its folder, whatever the entries' names, types and
// symlinks; what it creates is only folders, files (0644 or 0755) and symlinks, none of
// them writable by others or setuid.
// The input is a tar that the target gzips, so mutations reach the entries, or with raw
// set the layer itself, so they reach the gzip reader too.
func FuzzExtract(f *testing.F) {
	seeds := [][]*tar.Header{
		{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../outside"}, {Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "link/evil", Typeflag: tar.TypeReg}},
		{{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../outside/sentinel"}, {Name: "link", Typeflag: tar.TypeReg}},
		{{Name: "d/", Typeflag: tar.TypeDir}, {Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "../.."}, {Name: "d/l/outside/x", Typeflag: tar.TypeReg}},
		{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
		{{Name: "f", Typeflag: tar.TypeReg, Mode: 0o4777}, {Name: "f/", Typeflag: tar.TypeDir}},
		{{Name: "dist/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "dist/app", Typeflag: tar.TypeReg, Mode: 0o755},
			{Name: "dist/latest", Typeflag: tar.TypeSymlink, Linkname: "app", Mode: 0o777}, {Name: "dist/index.html", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "fifo", Typeflag: tar.TypeFifo}},
	}
	for _, hdrs := range seeds {
		var plain bytes.Buffer
		tw := tar.NewWriter(&plain)
		for _, h := range hdrs {
			if h.Typeflag == tar.TypeReg {
				h.Size = 5
			}
			if err := tw.WriteHeader(h); err != nil {
				f.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				if _, err := tw.Write([]byte("pwned")); err != nil {
					f.Fatal(err)
				}
			}
		}
		if err := tw.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(plain.Bytes(), false)
		var layer bytes.Buffer
		gz := gzip.NewWriter(&layer)
		if _, err := gz.Write(plain.Bytes()); err != nil {
			f.Fatal(err)
		}
		if err := gz.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(layer.Bytes(), true)
	}
	f.Add([]byte{}, true)
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"), true)

	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		layer := data
		if !raw {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			if _, err := gz.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := gz.Close(); err != nil {
				t.Fatal(err)
			}
			layer = buf.Bytes()
		}
		base := t.TempDir()
		dest, outside := filepath.Join(base, "dest"), filepath.Join(base, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		var errs [2]error
		for i := range errs { // the second time over what the first left
			errs[i] = Extract(context.Background(), bytes.NewReader(layer), dest)
		}

		for dir, want := range map[string][]string{base: {"dest", "outside"}, outside: {"sentinel"}} {
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
				t.Fatalf("%s holds %q after Extract (%v, %v), want %q", dir, got, errs[0], errs[1], want)
			}
		}
		if b, err := os.ReadFile(filepath.Join(outside, "sentinel")); err != nil || string(b) != "keep" {
			t.Fatalf("the file outside was changed: %q, %v", b, err)
		}
		err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := info.Mode()
			special := mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0
			switch {
			case mode.Type() == fs.ModeSymlink:
			case special || mode.Perm()&^0o755 != 0 || !mode.IsDir() && !mode.IsRegular():
				t.Errorf("%s: mode %v", p, mode)
			case mode.IsRegular() && errs[0] == nil && errs[1] == nil && mode.Perm() != 0o644 && mode.Perm() != 0o755:
				// A failed write may leave a file with its mode before the chmod; folders
				// made for an entry's parents have 0755 less the umask.
				t.Errorf("%s: mode %v", p, mode)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
