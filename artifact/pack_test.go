package artifact

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func pack(t testing.TB, s *Store, root, path string) ocispec.Descriptor {
	t.Helper()
	d, err := s.Pack(context.Background(), root, path)
	if err != nil {
		t.Fatalf("Pack(%q): %v", path, err)
	}
	return d
}

func TestPackDeterministic(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, sampleTree, styleA)
	writeTree(t, b, sampleTree, styleB)

	for _, path := range []string{"dist", "dist/", "bin/tool", "."} {
		first := pack(t, s, a, path)
		again := pack(t, s, a, path)
		copied := pack(t, s, b, path)
		if first.Digest != again.Digest || first.Digest != copied.Digest {
			t.Errorf("%q: digests differ: %s, %s, copy %s", path, first.Digest, again.Digest, copied.Digest)
		}
		if first.Size != copied.Size {
			t.Errorf("%q: sizes differ: %d vs %d", path, first.Size, copied.Size)
		}
	}

	base := pack(t, s, a, "dist").Digest
	must(t, os.WriteFile(filepath.Join(b, "dist/assets/style.css"), []byte("body{}\r"), 0o600))
	if d := pack(t, s, b, "dist").Digest; d == base {
		t.Error("changing one byte did not change the digest")
	}
	must(t, os.WriteFile(filepath.Join(b, "dist/assets/style.css"), []byte("body{}\n"), 0o600))
	if d := pack(t, s, b, "dist").Digest; d != base {
		t.Error("restoring the byte did not restore the digest")
	}
	must(t, os.Chmod(filepath.Join(b, "dist/index.html"), 0o610)) // group exec bit only
	if d := pack(t, s, b, "dist").Digest; d == base {
		t.Error("adding an exec bit did not change the digest")
	}
}

func TestPackListing(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleB)

	dir := pack(t, s, root, "dist/")
	if got := dir.Annotations[ocispec.AnnotationTitle]; got != "dist" {
		t.Errorf("title %q, want %q", got, "dist")
	}
	if dir.MediaType != LayerMediaType {
		t.Errorf("media type %q", dir.MediaType)
	}
	hdrs, contents := readLayer(t, s, dir)
	want := []string{"dist/", "dist/app", "dist/assets/", "dist/assets/style.css",
		"dist/assets/z-last.txt", "dist/empty/", "dist/index.html", "dist/latest"}
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		wantMode := map[byte]int64{tar.TypeDir: 0o755, tar.TypeSymlink: 0o777}[h.Typeflag]
		switch h.Name {
		case "dist/app":
			wantMode = 0o755
		case "dist/assets/style.css", "dist/assets/z-last.txt", "dist/index.html":
			wantMode = 0o644
		}
		if h.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, wantMode)
		}
	}
	if !slices.Equal(names, want) || !slices.IsSorted(names) {
		t.Errorf("names\n%q\nwant\n%q", names, want)
	}
	if hdrs[7].Typeflag != tar.TypeSymlink || hdrs[7].Linkname != "app" {
		t.Errorf("dist/latest: type %q link %q", hdrs[7].Typeflag, hdrs[7].Linkname)
	}
	if contents["dist/app"] != "#!/bin/sh\necho hi\n" {
		t.Errorf("dist/app content %q", contents["dist/app"])
	}

	file := pack(t, s, root, "bin/tool")
	if got := file.Annotations[ocispec.AnnotationTitle]; got != "bin/tool" {
		t.Errorf("title %q", got)
	}
	hdrs, contents = readLayer(t, s, file)
	if len(hdrs) != 1 || hdrs[0].Name != "bin/tool" || hdrs[0].Mode != 0o755 || contents["bin/tool"] != "\x7fELF...." {
		t.Errorf("single file layer: %+v", hdrs)
	}
}

func TestPackPathErrors(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleA)

	_, err := s.Pack(context.Background(), root, "missing/")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `artifact path "missing/" does not exist`) {
		t.Errorf("missing path: %v", err)
	}
	for _, p := range []string{"../x", "/etc", "dist/../../x", "", ".."} {
		if _, err := s.Pack(context.Background(), root, p); err == nil {
			t.Errorf("Pack(%q) succeeded, want error", p)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Pack(ctx, root, "dist"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestPackSymlinks(t *testing.T) {
	s := newStore(t)
	root := filepath.Join(t.TempDir(), "ws")
	outside := filepath.Join(filepath.Dir(root), "outside")
	must(t, os.MkdirAll(filepath.Join(outside, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "sub", "secret"), []byte("s"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "dist"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "build", "out"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "build", "out", "f"), []byte("f"), 0o644))
	must(t, os.Symlink("../../outside/sub", filepath.Join(root, "dist", "rel-out")))
	must(t, os.Symlink(outside, filepath.Join(root, "dist", "abs-out")))
	must(t, os.Symlink("../outside", filepath.Join(root, "esc")))
	must(t, os.Symlink("build/out", filepath.Join(root, "out")))

	// Links leading outside are stored as links, not followed.
	hdrs, _ := readLayer(t, s, pack(t, s, root, "dist"))
	if len(hdrs) != 3 || hdrs[1].Name != "dist/abs-out" || hdrs[1].Linkname != filepath.ToSlash(outside) ||
		hdrs[2].Name != "dist/rel-out" || hdrs[2].Linkname != "../../outside/sub" {
		for _, h := range hdrs {
			t.Logf("%s -> %s", h.Name, h.Linkname)
		}
		t.Fatal("outward symlinks not stored as links")
	}
	// A declared path reached through an outward link is rejected.
	for _, p := range []string{"esc/sub", "esc/sub/secret", "dist/rel-out/secret", "dist/abs-out/"} {
		_, err := s.Pack(context.Background(), root, p)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Pack(%q) = %v, want an escape error", p, err)
		}
	}
	// An in-root link component is fine; names stay as declared.
	hdrs, _ = readLayer(t, s, pack(t, s, root, "out/f"))
	if len(hdrs) != 1 || hdrs[0].Name != "out/f" {
		t.Errorf("in-root link component: %+v", hdrs)
	}
	// A trailing slash follows a final in-root link to its directory ...
	hdrs, _ = readLayer(t, s, pack(t, s, root, "out/"))
	if len(hdrs) != 2 || hdrs[0].Name != "out/" || hdrs[1].Name != "out/f" {
		t.Errorf("out/: %+v", hdrs)
	}
	// ... without it the link itself is packed.
	hdrs, _ = readLayer(t, s, pack(t, s, root, "out"))
	if len(hdrs) != 1 || hdrs[0].Typeflag != tar.TypeSymlink || hdrs[0].Linkname != "build/out" {
		t.Errorf("out: %+v", hdrs)
	}
	if _, err := s.Pack(context.Background(), root, "build/out/f/"); err == nil {
		t.Error("trailing slash on a file accepted")
	}
}

// TestPackGolden pins the layer format. If it fails after a Go upgrade,
// archive/tar or compress/flate output changed and every artifact digest with
// it: decide deliberately before updating the expected values.
func TestPackGolden(t *testing.T) {
	s := newStore(t)
	root := t.TempDir()
	writeTree(t, root, sampleTree, styleA)
	for path, want := range map[string]string{
		"dist":     "sha256:475ddf2061805fb1a39f236d70565a54d81aa5ba25679aa344da5430b68bc539",
		"bin/tool": "sha256:74ccf97cf5b4d4cef46cf150afce2484741faea57bb1841b3d45b94647459340",
	} {
		if got := pack(t, s, root, path).Digest; string(got) != want {
			t.Errorf("%s: digest %s, want %s", path, got, want)
		}
	}
}
