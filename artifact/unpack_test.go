package artifact

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestUnpackRoundTrip(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleB)
	out := t.TempDir()
	for _, p := range []string{"dist/", "bin/tool"} {
		must(t, s.Unpack(context.Background(), pack(t, s, root, p), out))
	}
	for _, n := range sampleTree {
		if n.path == "dist-notes.txt" {
			continue // not packed
		}
		p := filepath.Join(out, filepath.FromSlash(n.path))
		fi, err := os.Lstat(p)
		must(t, err)
		switch {
		case n.dir:
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: %v", n.path, fi.Mode())
			}
		case n.target != "":
			target, err := os.Readlink(p)
			must(t, err)
			if target != n.target {
				t.Errorf("%s -> %s, want %s", n.path, target, n.target)
			}
		default:
			data, err := os.ReadFile(p)
			must(t, err)
			want := os.FileMode(0o644)
			if n.exec {
				want = 0o755
			}
			if string(data) != n.data || fi.Mode() != want {
				t.Errorf("%s: %v %q, want %v %q", n.path, fi.Mode(), data, want, n.data)
			}
		}
	}
	// Repacking the extracted tree gives the same layer.
	for _, p := range []string{"dist", "bin/tool"} {
		if a, b := pack(t, s, root, p), pack(t, s, out, p); a.Digest != b.Digest {
			t.Errorf("%s: repacked digest %s, want %s", p, b.Digest, a.Digest)
		}
	}
	// Unpacking again over the existing tree works.
	must(t, s.Unpack(context.Background(), pack(t, s, root, "dist"), out))
}

func TestUnpackRejectsEscapes(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	must(t, os.MkdirAll(outside, 0o755))
	cases := map[string][]*tar.Header{
		"dotdot":   {{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"nested":   {{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"absolute": {{Name: "/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"via-link": {
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		},
		"via-abs-link": {
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		},
		"hardlink": {{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			d, err := s.putBytes(tarGz(t, hdrs, "pwned"))
			must(t, err)
			dir := filepath.Join(base, name)
			err = s.Unpack(context.Background(), ocispec.Descriptor{MediaType: LayerMediaType, Digest: d}, dir)
			if err == nil {
				t.Fatal("Unpack succeeded")
			}
			t.Log(err)
			for _, p := range []string{filepath.Join(base, "evil"), filepath.Join(outside, "evil")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written", p)
				}
			}
		})
	}
}
