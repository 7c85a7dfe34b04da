package secret

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// openKeyring opens (making) a key file in a fresh folder and fails the test when it
// cannot.
func openKeyring(t *testing.T, path string) *Keyring {
	t.Helper()
	kr, err := OpenKeyring(path)
	if err != nil {
		t.Fatalf("OpenKeyring: %v", err)
	}
	return kr
}

func TestKeyFileIsMadeOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	kr := openKeyring(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if len(bytes.TrimSpace(data)) != 64 {
		t.Errorf("key file holds %q, want 64 hex digits", data)
	}
	if len(kr.ID()) != 8 {
		t.Errorf("key ID %q, want 8 hex digits", kr.ID())
	}
	if again := openKeyring(t, path); again.ID() != kr.ID() {
		t.Errorf("reopened, the key is %s, want %s", again.ID(), kr.ID())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the folder holds %d files, want the key file only", len(entries))
	}
}

// Servers starting at once over one folder end up with one key.
func TestKeyFileMadeAtOnceIsOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			kr, err := OpenKeyring(path)
			if err != nil {
				t.Errorf("OpenKeyring: %v", err)
				return
			}
			ids[i] = kr.ID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("keys opened at once differ: %v", ids)
		}
	}
}

func TestKeyFilesThatAreRefused(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("ab", 32) + "\n"
	for _, c := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"readable by others", good, 0o644, "chmod 600"},
		{"readable by the group", good, 0o640, "chmod 600"},
		{"short", strings.Repeat("ab", 16), 0o600, "not a key"},
		{"long", strings.Repeat("ab", 33), 0o600, "not a key"},
		{"not hex", strings.Repeat("zz", 32), 0o600, "not a key"},
		{"empty", "", 0o600, "not a key"},
		{"raw bytes", strings.Repeat("\x01", 32), 0o600, "not a key"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if err := os.WriteFile(path, []byte(c.content), c.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, c.mode) // past the umask
		_, err := OpenKeyring(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: OpenKeyring: %v; want an error naming the file and saying %q", c.name, err, c.want)
		}
	}
	// A good one opens.
	path := filepath.Join(dir, "good")
	os.WriteFile(path, []byte(good), 0o600)
	if _, err := OpenKeyring(path); err != nil {
		t.Errorf("a good key file: %v", err)
	}
}

// A rekey cut short after its old key went missing cannot be finished: it says so
// rather than making a new key nothing opens with.
func TestMissingKeyFileBesideANewOneIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	os.WriteFile(path+".new", []byte(strings.Repeat("ab", 32)), 0o600)
	_, err := OpenKeyring(path)
	if err == nil || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("OpenKeyring with only PATH.new: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a new key file was made")
	}
}

func TestCiphertextsOpenOnlyForTheirSecretAndKey(t *testing.T) {
	dir := t.TempDir()
	kr := openKeyring(t, filepath.Join(dir, "a.key"))
	k := Key{Name: "DB_PASSWORD", Project: "shop", Environment: "staging"}
	value := []byte("hunter2-hunter2")
	ct, id, err := kr.encrypt(k, value)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, value) {
		t.Fatal("the ciphertext holds the value")
	}
	if got, err := kr.decrypt(k, ct, id); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("decrypt = %q, %v", got, err)
	}
	// A fresh nonce each time.
	if ct2, _, _ := kr.encrypt(k, value); bytes.Equal(ct, ct2) || bytes.Equal(ct[:12], ct2[:12]) {
		t.Error("two encryptions of one value are alike")
	}
	// Copied to another secret, it does not open: every part of the key counts, and
	// parts do not run into each other.
	for _, other := range []Key{
		{Name: "DB_PASSWORD", Project: "shop", Environment: "production"},
		{Name: "DB_PASSWORD", Project: "shop"},
		{Name: "DB_PASSWORD", Environment: "staging"},
		{Name: "DB_PASSWORD", Project: "web", Environment: "staging"},
		{Name: "API_KEY", Project: "shop", Environment: "staging"},
		{Name: "DB_PASSWORD", Project: "shopstaging"},
		{Name: "DB_PASSWORDshop", Environment: "staging"},
	} {
		if got, err := kr.decrypt(other, ct, id); err == nil {
			t.Errorf("the ciphertext of %s opens as %s: %q", k, other, got)
		}
	}
	// A changed byte does not open.
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := kr.decrypt(k, bad, id); err == nil {
		t.Error("a changed ciphertext opens")
	}
	if _, err := kr.decrypt(k, ct[:5], id); err == nil {
		t.Error("a cut ciphertext opens")
	}
	// Another key does not open it, whether it says it is the right one or not.
	other := openKeyring(t, filepath.Join(dir, "b.key"))
	if _, err := other.decrypt(k, ct, id); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("another keyring decrypts under an ID it does not have: %v", err)
	}
	if _, err := other.decrypt(k, ct, other.ID()); err == nil {
		t.Error("another key opens the ciphertext")
	}
}
