// Package dockertest gives tests a real Docker Engine and small images built FROM
// scratch on it: this machine's engine has no images and no registry to pull from.
//
// A test that needs the engine calls Engine. Where none answers the test is skipped
// with the reason, unless DROVER_REQUIRE_DOCKER is set: then it fails, so a CI machine
// with an engine cannot skip these tests by accident.
package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/docker"
)

// Require is the variable that turns a missing engine into a failure.
const Require = "DROVER_REQUIRE_DOCKER"

// Busybox is the test image with a shell: Debian's static busybox FROM scratch.
const Busybox = "drover-test/busybox:1"

// Engine connects to the engine with an owner label of the test's own, and removes
// everything with that label when the test ends. reg is the built-in registry the
// engine should use, if any.
func Engine(t testing.TB, reg docker.Registry) *docker.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := docker.Connect(ctx, Owner(t), reg)
	if err != nil {
		Skip(t, err.Error())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := e.RemoveLeftovers(ctx, nil); err != nil {
			t.Errorf("remove the test's containers: %v", err)
		}
		e.Close()
	})
	return e
}

// RemoveImagesOf removes, when the test ends, the images tagged under a registry at
// host (host:port) that the test pushed to.
func RemoveImagesOf(t testing.TB, e *docker.Engine, host string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := e.UntagUnder(ctx, host+"/"); err != nil {
			t.Errorf("remove the test's images: %v", err)
		}
	})
}

// Skip skips the test for why, or fails it when DROVER_REQUIRE_DOCKER is set.
func Skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(Require) != "" {
		t.Fatalf("%s is set but: %s", Require, why)
	}
	t.Skipf("needs a Docker Engine (set %s=1 to make this a failure): %s", Require, why)
}

// Owner is a fresh owner label for t.
func Owner(t testing.TB) string {
	return "test:" + strings.ReplaceAll(t.Name(), "/", "_") + ":" + rand.Text()[:8]
}

// BuildBusybox builds the Busybox image unless the engine has it and returns its name.
func BuildBusybox(t testing.TB, e *docker.Engine) string {
	t.Helper()
	bin := "/bin/busybox"
	if _, err := os.Stat(bin); err != nil {
		Skip(t, "no static busybox at /bin/busybox: apt-get install busybox-static")
	}
	dir := t.TempDir()
	copyFile(t, bin, filepath.Join(dir, "busybox"), 0o755)
	write(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\n"+
		"RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN mkdir -p /tmp && chmod 1777 /tmp\n")
	Build(t, e, dir, Busybox)
	return Busybox
}

// GoImage compiles the main package in pkgDir statically and builds an image FROM
// Busybox with it as /app/bin (its entrypoint), tagged tag.
func GoImage(t testing.TB, e *docker.Engine, pkgDir, tag string) string {
	t.Helper()
	base := BuildBusybox(t, e)
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bin"), ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkgDir, err, out)
	}
	write(t, filepath.Join(dir, "Dockerfile"), "FROM "+base+"\nCOPY bin /app/bin\nENTRYPOINT [\"/app/bin\"]\n")
	Build(t, e, dir, tag)
	return tag
}

// Build builds the context dir as tag.
func Build(t testing.TB, e *docker.Engine, dir, tag string) {
	t.Helper()
	var tarball, out bytes.Buffer
	if err := docker.TarContext(dir, &tarball); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.Build(ctx, docker.BuildSpec{Context: &tarball, Dockerfile: "Dockerfile", Tags: []string{tag}}, &out); err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, out.String())
	}
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
