package docker

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTarContextLeavesOutWhatDockerignoreNames(t *testing.T) {
	dir := t.TempDir()
	for path, body := range map[string]string{
		"Dockerfile":          "FROM scratch\n",
		"main.go":             "package main\n",
		"secrets.env":         "TOKEN=x\n",
		"node_modules/a/b.js": "x",
		"logs/keep.log":       "keep",
		"logs/drop.log":       "drop",
		".git/HEAD":           "ref: refs/heads/main\n",
		"dist/app":            "binary",
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755)
		os.WriteFile(filepath.Join(dir, path), []byte(body), 0o644)
	}
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("# comments are ignored\nsecrets.env\n/node_modules\nlogs/*.log\n!logs/keep.log\n"), 0o644)

	var buf bytes.Buffer
	if err := TarContext(dir, &buf); err != nil {
		t.Fatal(err)
	}
	var files []string
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			files = append(files, hdr.Name)
		}
	}
	slices.Sort(files)
	want := []string{".dockerignore", "Dockerfile", "dist/app", "logs/keep.log", "main.go"}
	if !slices.Equal(files, want) {
		t.Errorf("context holds %v, want %v", files, want)
	}
}

func TestLabelsGoInOneInstruction(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "build"), 0o755)
	os.WriteFile(filepath.Join(dir, "build", "app.Dockerfile"), []byte("FROM scratch"), 0o644)
	var buf bytes.Buffer
	if err := TarLabelledContext(dir, "build/app.Dockerfile", map[string]string{"b": `say "hi"`, "a": "1"}, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("no build/app.Dockerfile in the context: %v", err)
		}
		if hdr.Name == "build/app.Dockerfile" {
			data, _ := io.ReadAll(tr)
			if want := "FROM scratch\nLABEL \"a\"=\"1\" \"b\"=\"say \\\"hi\\\"\"\n"; string(data) != want {
				t.Errorf("Dockerfile %q, want %q", data, want)
			}
			return
		}
	}
}
