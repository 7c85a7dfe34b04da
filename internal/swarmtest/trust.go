package swarmtest

import (
	"os"
	"path/filepath"
	"testing"
)

// certsDir is where every engine on the machine looks for the CA certificates of
// registries, one folder per registry host:port.
const certsDir = "/etc/docker/certs.d"

// TrustCA makes the cluster's engines (and every other engine on the machine, which
// read the same folder) trust caPEM for the registry at hostport, until t ends.
// hostport must be unique to the test.
func (c *Cluster) TrustCA(t testing.TB, hostport string, caPEM []byte) {
	t.Helper()
	dir := filepath.Join(certsDir, hostport)
	made := !exists(certsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("swarmtest: trust a CA for %s: %v", hostport, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("swarmtest: remove the CA of %s: %v", hostport, err)
		}
		if made {
			os.Remove(certsDir) // only if no other test left a CA there
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatalf("swarmtest: trust a CA for %s: %v", hostport, err)
	}
}
