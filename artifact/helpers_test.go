package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// node describes one object of a test tree.
type node struct {
	path   string // slash-separated, relative to the tree root
	data   string // file content
	exec   bool   // file gets an exec bit
	dir    bool
	target string // symlink target, if not empty
}

// sampleTree is a small tree with nested and empty directories, an executable
// and a symlink.
var sampleTree = []node{
	{path: "dist", dir: true},
	{path: "dist/app", data: "#!/bin/sh\necho hi\n", exec: true},
	{path: "dist/assets", dir: true},
	{path: "dist/assets/style.css", data: "body{}\n"},
	{path: "dist/assets/z-last.txt", data: "zzz"},
	{path: "dist/empty", dir: true},
	{path: "dist/index.html", data: "<html></html>\n"},
	{path: "dist/latest", target: "app"},
	{path: "dist-notes.txt", data: "not part of dist/\n"},
	{path: "bin", dir: true},
	{path: "bin/tool", data: "\x7fELF....", exec: true},
}

// style varies the incidental properties that must not affect digests.
type style struct {
	reverse  bool        // create nodes in reverse order
	fileMode os.FileMode // permission of non-executables
	execMode os.FileMode // permission of executables
	dirMode  os.FileMode
	mtime    time.Time
}

var (
	styleA = style{fileMode: 0o644, execMode: 0o755, dirMode: 0o755, mtime: time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)}
	styleB = style{reverse: true, fileMode: 0o600, execMode: 0o700, dirMode: 0o700, mtime: time.Date(2024, 6, 7, 8, 9, 10, 0, time.UTC)}
)

// writeTree creates nodes under root; parent directories are created on demand
// so the creation order really follows the node order.
func writeTree(t testing.TB, root string, nodes []node, st style) {
	t.Helper()
	order := append([]node(nil), nodes...)
	if st.reverse {
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
	}
	for _, n := range order {
		p := filepath.Join(root, filepath.FromSlash(n.path))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case n.dir:
			must(t, os.MkdirAll(p, 0o755))
		case n.target != "":
			must(t, os.Symlink(n.target, p))
		default:
			must(t, os.WriteFile(p, []byte(n.data), 0o644))
		}
	}
	// Fix modes and times afterwards (children first so directory mtimes stick).
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		p := filepath.Join(root, filepath.FromSlash(n.path))
		switch {
		case n.target != "":
			continue
		case n.dir:
			must(t, os.Chmod(p, st.dirMode))
		case n.exec:
			must(t, os.Chmod(p, st.execMode))
		default:
			must(t, os.Chmod(p, st.fileMode))
		}
		must(t, os.Chtimes(p, st.mtime, st.mtime))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	must(t, err)
	return s
}

// readLayer returns the headers and file contents of a stored layer.
func readLayer(t testing.TB, s *Store, d ocispec.Descriptor) ([]*tar.Header, map[string]string) {
	t.Helper()
	rc, err := s.Blob(d.Digest)
	must(t, err)
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	must(t, err)
	if int64(len(raw)) != d.Size {
		t.Fatalf("blob size %d, descriptor says %d", len(raw), d.Size)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	must(t, err)
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("gzip header name %q mtime %v, want empty and zero", gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	var hdrs []*tar.Header
	contents := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		hdrs = append(hdrs, h)
		contents[h.Name] = string(b)
	}
	return hdrs, contents
}

// tarGz builds a tar.gz stream from headers; regular entries get body as content.
func tarGz(t testing.TB, hdrs []*tar.Header, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		must(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	must(t, gz.Close())
	return buf.Bytes()
}
